# More than one judge of sample quality (evaluation/judges.py): a second classifier of another architecture and
# seed and a label-free autoencoder, trained once per build beside the domain classifier; then every run's
# samples (the `evaluate` rule's samples.pt) scored in each judge's features, the domain classifier's included.
JUDGE_MODELS = C.judge_models(CFG)
TRAINED_JUDGES = [j for j in C.judges_config(CFG)["judges"] if j != "domain"]
# every run's judges.json (the main seeds of each model that draws samples): built by rule all (rules/check.smk),
# their jobs' costs in the provenance record (rules/deliver.smk)
JUDGE_RESULTS = [P.judge_dir(m, k) + "/judges.json" for m in JUDGE_MODELS for k in C.model_seeds(CFG, m)]


rule train_judges:
    input:
        P.manifest,
    output:
        models=[f"{P.judges_dir}/{j}.pt" for j in TRAINED_JUDGES],
        references=[f"{P.judges_dir}/{j}_reference.pt" for j in TRAINED_JUDGES],
        info=f"{P.judges_dir}/judges.json",
    params:
        spec=spec(C.judges_spec(CFG)),
        out=P.judges_dir,
    threads: job_threads("classifier")
    resources: **res("classifier")
    log:
        f"{P.logs}/train_judges.log",
    benchmark:
        f"{P.benchmarks}/train_judges.tsv"
    shell:
        "{PY} -m genreview train-judges --spec {params.spec:q} --out {params.out} --threads {threads} > {log} 2>&1"


# One run's samples in every judge: results/<tag>/judges/<model>/seed<k>/judges.json.
rule judge:
    input:
        samples=rules.evaluate.output.samples,
        metrics=rules.evaluate.output.metrics,
        classifier=rules.train_classifier.output.model,
        reference=P.reference_features,
        judges=rules.train_judges.output,
    output:
        result=P.judge_dir("{model}", "{seed}") + "/judges.json",
    params:
        spec=lambda w: spec(C.judge_spec(CFG, w.model, int(w.seed))),
        judges=P.judges_dir,
        out=lambda w: P.judge_dir(w.model, w.seed),
    threads: job_threads("sample")
    resources: **res("sample")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/judge/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/judge/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview judge --spec {params.spec:q} --samples {input.samples} --metrics {input.metrics} "
        "--classifier {input.classifier} --reference {input.reference} --judges {params.judges} "
        "--out {params.out} --threads {threads} > {log} 2>&1"
