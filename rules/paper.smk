# Presentation only: these rules read results files and never train or sample. Each figure and table
# module declares the files it writes for the build's models and studies (genreview.publish.plan.Plan).
from genreview.publish.figures import figure_names  # noqa: E402
from genreview.publish.plan import Plan  # noqa: E402
from genreview.publish.tables import table_names  # noqa: E402
from genreview.publish.tables.claims import CLAIM_TABLES as _CLAIM_TABLES  # noqa: E402

TEMPLATES = sorted(str(p) for p in Path(P.templates).rglob("*") if p.is_file())
RENDERED = [
    f"{P.paper_build}/" + str(Path(t).relative_to(P.templates)).removesuffix(".j2")
    for t in TEMPLATES
    if t.endswith(".tex.j2") or t.endswith(".bib")
]
PLAN = Plan(MODELS, SWEEP_MODELS, GUIDANCE_MODELS, DYNAMICS_MODELS, PROBE_MODELS, CURVE_MODELS)
FIGURES = [f"{P.figures}/{name}" for name in figure_names(PLAN)]
TABLES = [f"{P.tables}/{name}" for name in table_names(PLAN)]
CLAIM_TABLES = [f"{P.tables}/{name}" for name in _CLAIM_TABLES]  # written by rule claims

rule figures:
    input:
        summary=P.summary,
        runs=expand(P.run_dir("{model}", SEEDS[0]) + "/progress.pt", model=MODELS),
        samples=expand(P.eval_dir("{model}", SEEDS[0]) + "/samples.pt", model=MODELS),
        sweeps=expand(P.sweep_dir("{model}", SEEDS[0]) + "/sweep_grids.pt", model=SWEEP_MODELS),
        guidance=expand(P.guidance_dir("{model}", SEEDS[0]) + "/guidance_grids.pt", model=GUIDANCE_MODELS),
        dynamics=expand(P.dynamics_dir("{model}") + "/dynamics_grids.pt", model=DYNAMICS_MODELS),
        probes=expand(P.probe_dir("{model}", SEEDS[0]) + "/probes.pt", model=PROBE_MODELS),
        claims=P.claims,  # the verdicts along training compute (claims_vs_compute.pdf)
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
        "--dynamics {params.dynamics:q} --probes {params.probes:q} --claims {input.claims} "
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


# build/review.pdf, the path the README names: a copy of the PDF of the latest build, whichever its profile
# (each profile's own stays under build/<tag>/). The tag as a param: switching profiles copies again.
rule latest_pdf:
    input:
        P.pdf,
    output:
        P.latest_pdf,
    params:
        tag=P.tag,
    log:
        f"{P.logs}/latest_pdf.log",
    benchmark:
        f"{P.benchmarks}/latest_pdf.tsv"
    shell:
        "cp {input} {output} > {log} 2>&1"


localrules: latest_pdf
