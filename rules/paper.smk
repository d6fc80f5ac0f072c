# Presentation only: these rules read results files and never train or sample.
TEMPLATES = sorted(str(p) for p in Path(P.templates).rglob("*") if p.is_file())
RENDERED = [
    f"{P.paper_build}/" + str(Path(t).relative_to(P.templates)).removesuffix(".j2")
    for t in TEMPLATES
    if t.endswith(".tex.j2") or t.endswith(".bib")
]
FIGURES = [f"{P.figures}/{name}"
           for name in figure_names(MODELS, SWEEP_MODELS, GUIDANCE_MODELS, DYNAMICS_MODELS, PROBE_MODELS,
                                    CURVE_MODELS)]
TABLES = [f"{P.tables}/{name}"
          for name in table_names(SWEEP_MODELS, GUIDANCE_MODELS, MODELS, DYNAMICS_MODELS, CURVE_MODELS)]
CLAIM_TABLES = [f"{P.tables}/claims.tex", f"{P.tables}/comparison.tex"]  # written by rule claims


rule figures:
    input:
        summary=P.summary,
        runs=expand(P.run_dir("{model}", SEEDS[0]) + "/progress.pt", model=MODELS),
        samples=expand(P.eval_dir("{model}", SEEDS[0]) + "/samples.pt", model=MODELS),
        sweeps=expand(P.sweep_dir("{model}", SEEDS[0]) + "/sweep_grids.pt", model=SWEEP_MODELS),
        guidance=expand(P.guidance_dir("{model}", SEEDS[0]) + "/guidance_grids.pt", model=GUIDANCE_MODELS),
        dynamics=expand(P.dynamics_dir("{model}") + "/dynamics_grids.pt", model=DYNAMICS_MODELS),
        probes=expand(P.probe_dir("{model}", SEEDS[0]) + "/probes.pt", model=PROBE_MODELS),
    output:
        report(FIGURES, category="Figures", caption="report/figures.rst"),  # shown by snakemake --report
    params:
        runs=spec({m: P.run_dir(m, SEEDS[0]) for m in MODELS}),
        evals=spec({m: P.eval_dir(m, SEEDS[0]) for m in MODELS}),
        sweeps=spec({m: P.sweep_dir(m, SEEDS[0]) for m in SWEEP_MODELS}),
        guidance=spec({m: P.guidance_dir(m, SEEDS[0]) for m in GUIDANCE_MODELS}),
        dynamics=spec({m: P.dynamics_dir(m) for m in DYNAMICS_MODELS}),
        probes=spec({m: P.probe_dir(m, SEEDS[0]) for m in PROBE_MODELS}),
    log:
        f"{P.logs}/figures.log",
    benchmark:
        f"{P.benchmarks}/figures.tsv"
    shell:
        "{PY} -m genreview figures --summary {input.summary} --runs {params.runs:q} --evals {params.evals:q} "
        "--sweeps {params.sweeps:q} --guidance {params.guidance:q} "
        "--dynamics {params.dynamics:q} --probes {params.probes:q} "
        "--data-root {P.data_root} --out {P.figures} > {log} 2>&1"


rule tables:
    input:
        P.summary,
    output:
        TABLES,
    log:
        f"{P.logs}/tables.log",
    benchmark:
        f"{P.benchmarks}/tables.tsv"
    shell:
        "{PY} -m genreview tables --summary {input} --out {P.tables} > {log} 2>&1"


rule claims:
    input:
        summary=P.summary,
        ledger=f"{P.templates}/claims.yaml",
    output:
        claims=P.claims,
        tables=CLAIM_TABLES,
    log:
        f"{P.logs}/claims.log",
    benchmark:
        f"{P.benchmarks}/claims.tsv"
    shell:
        "{PY} -m genreview claims --summary {input.summary} --ledger {input.ledger} --out {output.claims} "
        "--tables {P.tables} > {log} 2>&1"


rule render:
    input:
        templates=TEMPLATES,
        summary=P.summary,
        claims=P.claims,
        provenance=P.provenance,
    output:
        RENDERED,
    log:
        f"{P.logs}/render.log",
    benchmark:
        f"{P.benchmarks}/render.tsv"
    shell:
        "{PY} -m genreview render --templates {P.templates} --summary {input.summary} --claims {input.claims} "
        "--provenance {input.provenance} --figures {P.figures} --tables {P.tables} --out {P.paper_build} "
        "> {log} 2>&1"


rule latex:
    input:
        RENDERED,
        FIGURES,
        TABLES,
        CLAIM_TABLES,
    output:
        P.pdf,
    log:
        f"{P.logs}/latex.log",
    benchmark:
        f"{P.benchmarks}/latex.tsv"
    shell:
        "{PY} -m genreview latex --dir {P.paper_build} --out {output} > {log} 2>&1"
