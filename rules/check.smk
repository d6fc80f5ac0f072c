# The final target's guard. Every results file the summary, the figures and the paper read, and every file of every
# main run, loaded once more (JSON, JSON lines, .pt, .npz). A missing file is rebuilt, being an input here; a
# corrupt one fails this job with its name and its rebuild command, and, since a failed job leaves no checked.json,
# every plain rerun fails the same way until it is fixed: a build never ends green over a bad file and a stale PDF.


def _outputs(rule, models, seeds_of):
    return [f for m in models for k in seeds_of(m) for f in expand(rule.output, model=m, seed=k)]


def _main_seeds(model):
    return C.model_seeds(CFG, model)


CHECKED = sorted({
    *rules.summarize.input, *rules.figures.input, *rules.train_classifier.output,
    *_outputs(rules.train, MODELS, _main_seeds), *_outputs(rules.evaluate, MODELS, _main_seeds),
    *_outputs(rules.sweep, SWEEP_MODELS, lambda m: C.study_seeds(CFG, "sweep", m)), *_outputs(rules.guidance, GUIDANCE_MODELS, _main_seeds),
    *_outputs(rules.probe, PROBE_MODELS, lambda m: C.study_seeds(CFG, "probe", m)), *_outputs(rules.dynamics, DYNAMICS_MODELS, lambda m: [0]),
    *_outputs(rules.curve, CURVE_MODELS, _main_seeds),
    *rules.train_judges.output, *_outputs(rules.judge, JUDGE_MODELS, _main_seeds),
    P.summary, P.claims, P.provenance, P.reference_features,
})


rule check_results:
    input:
        CHECKED,
    output:
        f"{P.results}/checked.json",
    log:
        f"{P.logs}/check_results.log",
    benchmark:
        f"{P.benchmarks}/check_results.tsv"
    shell:
        "{PY} -m genreview check {input:q} --out {output} > {log} 2>&1"


localrules: check_results
