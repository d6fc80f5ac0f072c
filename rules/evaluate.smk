# One protocol for every family: samples scored in the domain classifier's feature space.
rule evaluate:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
        reference=P.reference_features,
    output:
        metrics=P.eval_dir("{model}", "{seed}") + "/metrics.json",
        samples=P.eval_dir("{model}", "{seed}") + "/samples.pt",
        features=P.eval_dir("{model}", "{seed}") + "/features.pt",
    params:
        spec=lambda w: spec(C.eval_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.eval_dir(w.model, w.seed),
    threads: job_threads("sample")
    resources: **res("sample")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/evaluate/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/evaluate/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview evaluate --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --reference {input.reference} --out {params.out} --threads {threads} "
        "> {log} 2>&1"


# The real side of every score, once per build: the floor and ceiling, and the reference images' classifier
# features, which every scoring job loads.
rule reference:
    input:
        classifier=rules.train_classifier.output.model,
    output:
        summary=P.reference,
        features=P.reference_features,
    params:
        spec=spec(C.reference_spec(CFG)),
    threads: job_threads("reference")
    resources: **res("reference")
    log:
        f"{P.logs}/reference.log",
    benchmark:
        f"{P.benchmarks}/reference.tsv"
    shell:
        "{PY} -m genreview reference --spec {params.spec:q} --classifier {input.classifier} "
        "--out {output.summary} --features {output.features} --threads {threads} > {log} 2>&1"


rule summarize:
    input:
        metrics=[P.eval_dir(m, k) + "/metrics.json" for m in MODELS for k in C.model_seeds(CFG, m)],
        # the studies of a main run at every seed of its model (seeds_by_model), so that their claims have seeds;
        # sweeps and probes at the first seed only for the models their every_seed leaves out
        sweeps=[P.sweep_dir(m, k) + "/sweep.json" for m in SWEEP_MODELS for k in C.study_seeds(CFG, "sweep", m)],
        guidance=[P.guidance_dir(m, k) + "/guidance.json" for m in GUIDANCE_MODELS for k in C.model_seeds(CFG, m)],
        dynamics=expand(P.dynamics_dir("{model}") + "/dynamics.json", model=DYNAMICS_MODELS),
        probes=[P.probe_dir(m, k) + "/probes.json" for m in PROBE_MODELS for k in C.study_seeds(CFG, "probe", m)],
        curves=[P.curve_dir(m, k) + "/curve.json" for m in CURVE_MODELS for k in C.model_seeds(CFG, m)],
        # every run's samples in every judge of sample quality (rules/judges.smk)
        judges=[P.judge_dir(m, k) + "/judges.json" for m in C.judge_models(CFG) for k in C.model_seeds(CFG, m)],
        reference=P.reference,
        classifier=rules.train_classifier.output.info,
        manifest=P.manifest,
    output:
        P.summary,
    params:
        spec=spec(C.summary_spec(CFG)),
    log:
        f"{P.logs}/summarize.log",
    benchmark:
        f"{P.benchmarks}/summarize.tsv"
    shell:
        "{PY} -m genreview summarize --spec {params.spec:q} --metrics {input.metrics} "
        "--sweeps {input.sweeps} --guidance {input.guidance} --dynamics {input.dynamics} --probes {input.probes} "
        "--curves {input.curves} --judges {input.judges} "
        "--reference {input.reference} --classifier {input.classifier} --manifest {input.manifest} "
        "--out {output} > {log} 2>&1"
