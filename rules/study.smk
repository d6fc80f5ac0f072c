# The sampling-cost studies on trained runs: every sampler at every step count, and the
# classifier-free guidance sweep. Each reads a finished run and writes one results file.
rule sweep:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
    output:
        points=P.sweep_dir("{model}", "{seed}") + "/sweep.json",
        grids=P.sweep_dir("{model}", "{seed}") + "/sweep_grids.pt",
    params:
        spec=lambda w: spec(C.sweep_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.sweep_dir(w.model, w.seed),
    threads: workflow.cores
    log:
        f"{P.logs}/sweep/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/sweep/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview sweep --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --out {params.out} --threads {threads} > {log} 2>&1"


rule guidance:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
    output:
        points=P.guidance_dir("{model}", "{seed}") + "/guidance.json",
        grids=P.guidance_dir("{model}", "{seed}") + "/guidance_grids.pt",
    params:
        spec=lambda w: spec(C.guidance_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.guidance_dir(w.model, w.seed),
    threads: workflow.cores
    log:
        f"{P.logs}/guidance/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/guidance/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview guidance --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --out {params.out} --threads {threads} > {log} 2>&1"
