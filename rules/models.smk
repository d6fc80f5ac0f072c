# Training of every model family. A killed job resumes from <run>/checkpoint.pt on the
# next snakemake call (the checkpoint is not an output, so snakemake keeps it).
rule train:
    input:
        P.manifest,
    output:
        model=P.run_dir("{model}", "{seed}") + "/model.pt",
        summary=P.run_dir("{model}", "{seed}") + "/train_summary.json",
        log=P.run_dir("{model}", "{seed}") + "/train_log.jsonl",
        progress=P.run_dir("{model}", "{seed}") + "/progress.pt",
    params:
        spec=lambda w: spec(C.train_spec(CFG, w.model, int(w.seed))),
        out=lambda w: P.run_dir(w.model, w.seed),
    threads: job_threads("train")
    resources: **res("train")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/train/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/train/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview train --spec {params.spec:q} --out {params.out} --threads {threads} > {log} 2>&1"
