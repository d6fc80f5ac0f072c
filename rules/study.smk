# The sampling-cost studies on trained runs: every sampler at every step count, and the
# classifier-free guidance sweep. Each reads a finished run and writes one results file.
rule sweep:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
        reference=P.reference_features,
    output:
        points=P.sweep_dir("{model}", "{seed}") + "/sweep.json",
        grids=P.sweep_dir("{model}", "{seed}") + "/sweep_grids.pt",
    params:
        spec=lambda w: spec(C.sweep_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.sweep_dir(w.model, w.seed),
    threads: job_threads("sample")
    resources: **res("sample")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/sweep/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/sweep/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview sweep --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --reference {input.reference} --out {params.out} --threads {threads} "
        "> {log} 2>&1"


rule guidance:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
        reference=P.reference_features,
    output:
        points=P.guidance_dir("{model}", "{seed}") + "/guidance.json",
        grids=P.guidance_dir("{model}", "{seed}") + "/guidance_grids.pt",
    params:
        spec=lambda w: spec(C.guidance_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.guidance_dir(w.model, w.seed),
    threads: job_threads("sample")
    resources: **res("sample")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/guidance/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/guidance/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview guidance --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --reference {input.reference} --out {params.out} --threads {threads} "
        "> {log} 2>&1"


# The GAN training-dynamics study (Lucic et al. 2018): short runs of one family over seeds and random
# hyperparameters, plus the .detach() ablation. It trains its own runs, at the precision its main run chose.
rule dynamics:
    input:
        manifest=P.manifest,
        classifier=rules.train_classifier.output.model,
        reference=P.reference_features,
        # the main run's precision and memory format, which the short runs take
        main_run=lambda w: P.run_dir(w.model, C.model_seeds(CFG, w.model)[0]) + "/train_summary.json",
    output:
        runs=P.dynamics_dir("{model}") + "/dynamics.json",
        grids=P.dynamics_dir("{model}") + "/dynamics_grids.pt",
    params:
        spec=lambda w: spec(C.dynamics_spec(CFG, w.model, SEEDS[0])),
        out=lambda w: P.dynamics_dir(w.model),
    threads: job_threads("dynamics")
    resources: **res("dynamics")
    log:
        f"{P.logs}/dynamics/{{model}}.log",
    benchmark:
        f"{P.benchmarks}/dynamics/{{model}}.tsv"
    shell:
        "{PY} -m genreview dynamics --spec {params.spec:q} --classifier {input.classifier} "
        "--reference {input.reference} --main-run {input.main_run} --out {params.out} --threads {threads} > {log} 2>&1"


# What a trained latent-variable model offers beyond samples: reconstruction (GAN inversion against the
# VAE's encoder), a linear probe of its features, and perceptual path length.
rule probe:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
    output:
        result=P.probe_dir("{model}", "{seed}") + "/probes.json",
        grids=P.probe_dir("{model}", "{seed}") + "/probes.pt",
    params:
        spec=lambda w: spec(C.probe_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.probe_dir(w.model, w.seed),
    threads: job_threads("sample")
    resources: **res("sample")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/probe/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/probe/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview probe --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --out {params.out} --threads {threads} > {log} 2>&1"


# Quality against training compute: the weight snapshots that the main run of each model in
# curves.models kept (run/snapshots/), each sampled and scored; resumable snapshot by snapshot.
rule curve:
    input:
        run=rules.train.output.model,
        summary=rules.train.output.summary,
        classifier=rules.train_classifier.output.model,
        reference=P.reference_features,
    output:
        curve=P.curve_dir("{model}", "{seed}") + "/curve.json",
    params:
        spec=lambda w: spec(C.curve_spec(CFG, w.model, int(w.seed))),
        run=lambda w: P.run_dir(w.model, w.seed),
        out=lambda w: P.curve_dir(w.model, w.seed),
    threads: job_threads("sample")
    resources: **res("sample")
    group: CHAIN_GROUP  # one submitted job per model and seed (rules/common.smk)
    log:
        f"{P.logs}/curve/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/curve/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview curve --spec {params.spec:q} --run {params.run} "
        "--classifier {input.classifier} --reference {input.reference} --out {params.out} --threads {threads} "
        "> {log} 2>&1"
