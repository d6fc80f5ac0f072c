# Delivery: the provenance record, the arXiv tarball.
import functools

from snakemake.io import apply_wildcards, is_callable


report: "report/workflow.rst"  # the front page of `snakemake --report build/<profile>/report.html`

Path(P.report).parent.mkdir(parents=True, exist_ok=True)  # snakemake --report does not create its folder


def upstream_benchmarks(targets):
    """(rule -> the benchmark files of every job that the concrete files `targets` depend on, benchmark file ->
    the log of its job): each file is matched to the rule that produces it (with its wildcards), and that rule's
    inputs are followed in turn. Input functions are not followed; no rule here uses one upstream of the summary."""
    found, logs, seen, todo = {}, {}, set(), [str(t) for t in targets]
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
            bench = apply_wildcards(str(producer.benchmark), wildcards)
            found.setdefault(producer.name, set()).add(bench)
            if producer.log:  # where the job ran: each step writes it to its log (genreview.provenance)
                logs[bench] = apply_wildcards(str(producer.log[0]), wildcards)
        todo += [apply_wildcards(str(i), wildcards) for i in producer.input if not is_callable(i)]
    return {name: sorted(files) for name, files in found.items()}, logs


@functools.cache
def compute_benchmarks():
    """The compute jobs whose wall time and memory the provenance record reports: every job the summary
    depends on (whatever rules a later change adds) and the judges' jobs (rules/judges.smk), and the log of
    each, as JSON. The presentation rules (figures, tables, render, latex, provenance, arxiv...) run after the
    record is written and are left out."""
    files, logs = upstream_benchmarks([P.summary, *JUDGE_RESULTS])
    return spec(files), spec(logs)


rule provenance:
    input:
        # Rewritten after any compute job reruns, so the record (which reads the benchmark files and the jobs'
        # logs, not outputs of any rule) follows every rerun.
        summary=P.summary,
        judges=JUDGE_RESULTS,  # the judges' jobs, whose costs the record reports too
    output:
        report(P.provenance, category="Provenance", caption="report/provenance.rst"),
    params:
        config=spec(CFG),
        benchmarks=lambda wildcards: compute_benchmarks()[0],  # when every rule file has been read
        logs=lambda wildcards: compute_benchmarks()[1],
    log:
        f"{P.logs}/provenance.log",
    benchmark:
        f"{P.benchmarks}/provenance.tsv"
    shell:
        "{PY} -m genreview provenance --spec {params.config:q} --benchmarks {params.benchmarks:q} "
        "--logs {params.logs:q} --out {output} > {log} 2>&1"


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
