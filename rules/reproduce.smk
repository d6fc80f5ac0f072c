# A reviewer re-runs one experiment and sees whether it lands within the paper's spread.
# Target: results/<profile>/reproduce/<model>/seed<k>/report.md. The model trains (run/) and is scored (eval/)
# in that folder, never in the paper's runs; the paper's summary is an input, so its numbers exist first. Any
# seed is allowed (a fresh seed is judged by the paper's seed spread), and so is any model name, so that one
# missing from the summary gets genreview's message naming the fix rather than "no rule to produce".
rule reproduce:
    input:
        summary=P.summary,
        classifier=rules.train_classifier.output.model,
    output:
        report=P.reproduce_dir("{model}", "{seed}") + "/report.json",
        markdown=P.reproduce_dir("{model}", "{seed}") + "/report.md",
    wildcard_constraints:
        model=r"[A-Za-z0-9_]+",
    params:
        spec=lambda w: spec(C.reproduce_spec(CFG, w.model, int(w.seed))),
        out=lambda w: P.reproduce_dir(w.model, w.seed),
    threads: job_threads("reproduce")
    resources: **res("reproduce")
    log:
        f"{P.logs}/reproduce/{{model}}_seed{{seed}}.log",
    benchmark:
        f"{P.benchmarks}/reproduce/{{model}}_seed{{seed}}.tsv"
    shell:
        "{PY} -m genreview reproduce --spec {params.spec:q} --summary {input.summary} "
        "--classifier {input.classifier} --out {params.out} --threads {threads} > {log} 2>&1 "
        "&& cat {output.markdown}"
