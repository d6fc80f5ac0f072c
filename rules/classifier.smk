# The evaluation protocol's judge: trained once per profile on the train split, then frozen.
rule train_classifier:
    input:
        P.manifest,
    output:
        model=f"{P.classifier_dir}/classifier.pt",
        info=f"{P.classifier_dir}/classifier.json",
    params:
        spec=spec(C.classifier_spec(CFG)),
        out=P.classifier_dir,
    threads: job_threads("classifier")
    resources: **res("classifier")
    log:
        f"{P.logs}/train_classifier.log",
    benchmark:
        f"{P.benchmarks}/train_classifier.tsv"
    shell:
        "{PY} -m genreview train-classifier --spec {params.spec:q} --out {params.out} "
        "--threads {threads} > {log} 2>&1"
