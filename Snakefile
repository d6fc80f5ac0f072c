# genreview: a measured review of generative models.
#
# Real images in, every model family trained and scored under one protocol, and the
# LaTeX review rebuilt from the runs:
#
#   data -> domain classifier -> train each model x seed -> evaluate, sampling sweeps -> summary
#        -> figures + tables -> rendered templates -> latexmk -> build/<profile>/review.pdf
#        (and a copy of the latest build's as build/review.pdf)
#
# Build:   snakemake --cores all                     (profile from config.yaml; default small)
#          snakemake --cores all --config profile=smoke
# One run: snakemake --cores all results/small/eval/vae/seed0/metrics.json

configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/classifier.smk"
include: "rules/models.smk"
include: "rules/evaluate.smk"
include: "rules/study.smk"
include: "rules/judges.smk"
include: "rules/paper.smk"
include: "rules/deliver.smk"
include: "rules/reproduce.smk"
include: "rules/check.smk"


rule all:
    input:
        P.pdf,
        P.latest_pdf,
        CHECKED,  # every results and run file: one that is missing is rebuilt (rules/check.smk)
        rules.check_results.output,  # ... and all of them loaded: a corrupt one fails every rerun, named with its fix
    default_target: True
