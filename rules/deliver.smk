# Delivery: the provenance record, the arXiv tarball.
import functools

from snakemake.io import apply_wildcards, is_callable


report: "report/workflow.rst"  # the front page of `snakemake --report build/<profile>/report.html`

Path(P.report).parent.mkdir(parents=True, exist_ok=True)  # snakemake --report does not create its folder


def upstream_benchmarks(targets):
    """rule -> the benchmark files of every job that the concrete files `targets` depend on: each file is
    matched to the rule that produces it (with its wildcards), and that rule's inputs are followed in turn.
    Input functions are not followed; no rule here uses one upstream of the summary."""
    found, seen, todo = {}, set(), [str(t) for t in targets]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        producer = next((r for r in workflow.rules if r.is_producer(f)), None)
        if producer is None:  # a source file (the data, the templates)
            continue
        wildcards = producer.get_wildcards(f)
        if producer.benchmark:
            found.setdefault(producer.name, set()).add(apply_wildcards(str(producer.benchmark), wildcards))
        todo += [apply_wildcards(str(i), wildcards) for i in producer.input if not is_callable(i)]
    return {name: sorted(files) for name, files in found.items()}


@functools.cache
def compute_benchmarks():
    """The compute jobs whose wall time and memory the provenance record reports: every job the summary
    depends on (whatever rules a later change adds), as JSON. The presentation rules (figures, tables,
    render, latex, provenance, arxiv...) run after the record is written and are left out."""
    return spec(upstream_benchmarks([P.summary]))


rule provenance:
    input:
        # Rewritten after any compute job reruns, so the record (which reads the benchmark files, not
        # outputs of any rule) follows every rerun.
        summary=P.summary,
    output:
        report(P.provenance, category="Provenance", caption="report/provenance.rst"),
    params:
        config=spec(CFG),
        benchmarks=lambda wildcards: compute_benchmarks(),  # when every rule file has been read
    log:
        f"{P.logs}/provenance.log",
    benchmark:
        f"{P.benchmarks}/provenance.tsv"
    shell:
        "{PY} -m genreview provenance --spec {params.config:q} --benchmarks {params.benchmarks:q} "
        "--out {output} > {log} 2>&1"


# `snakemake --cores all arxiv`: the paper as an arXiv submission (not part of the default target).
rule arxiv:
    input:
        pdf=P.pdf,  # latexmk has run: the .bbl beside the rendered main.tex belongs to this build
        rendered=RENDERED,
    output:
        P.arxiv,
    log:
        f"{P.logs}/arxiv.log",
    benchmark:
        f"{P.benchmarks}/arxiv.tsv"
    shell:
        "{PY} -m genreview arxiv --dir {P.paper_build} --out {output} > {log} 2>&1"
