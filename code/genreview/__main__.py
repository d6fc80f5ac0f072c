"""Command line: one subcommand per pipeline step (Snakemake calls these; so can you).

    python -m genreview train --config config.yaml --model vae --seed 0 --out results/small/vae/seed0

Each step takes either --spec (the JSON the Snakefile passes) or --config (a config.yaml,
resolved with its profile, optionally --profile to override it).
"""
from __future__ import annotations

import argparse
import json
import sys

import logging


def _spec(args, kind: str) -> dict:
    if args.spec:
        return json.loads(args.spec)
    from . import config as C
    raw = C.load(args.config)
    if args.profile:
        raw["profile"] = args.profile
    cfg = C.resolve(raw, args.config)
    if kind == "train":
        return C.train_spec(cfg, args.model, args.seed)
    if kind == "eval":
        return C.eval_spec(cfg, args.model, args.seed)
    if kind == "sweep":
        return C.sweep_spec(cfg, args.model, args.seed)
    if kind == "guidance":
        return C.guidance_spec(cfg, args.model, args.seed)
    if kind == "dynamics":
        return C.dynamics_spec(cfg, args.model, args.seed)
    if kind == "probe":
        return C.probe_spec(cfg, args.model, args.seed)
    if kind == "curve":
        return C.curve_spec(cfg, args.model, args.seed)
    if kind == "reproduce":
        return C.reproduce_spec(cfg, args.model, args.seed)
    if kind == "classifier":
        return C.classifier_spec(cfg)
    if kind == "reference":
        return C.reference_spec(cfg)
    if kind == "data":
        return C.data_spec(cfg)
    if kind == "config":  # the whole resolved config (provenance hashes it)
        return cfg
    return C.summary_spec(cfg)


# Errors that mean bad input: shown as one clear message, without a traceback.
USER_ERRORS = {"ConfigError", "DataError", "LatexError", "RenderError", "InceptionWeightsMissing", "LedgerError"}
USER_ERRORS |= {"ReproduceError"}  # reproduce: a model missing from the summary, or a diverged run
USER_ERRORS |= {"ArxivError", "ProvenanceError"}  # the paper not built yet; no benchmark files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m genreview", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def step(name, help_):
        s = sub.add_parser(name, help=help_)
        g = s.add_mutually_exclusive_group()
        g.add_argument("--spec", help="JSON spec (as written by the Snakefile)")
        g.add_argument("--config", default="config.yaml", help="config.yaml to resolve (default)")
        s.add_argument("--profile", choices=["smoke", "small", "full"])
        s.add_argument("--threads", type=int)
        return s

    s = step("prepare-data", "put the dataset in torchvision's layout; write a manifest")
    s.add_argument("--manifest", required=True)
    s = step("train-classifier", "train the frozen domain classifier of the protocol")
    s.add_argument("--out", required=True)
    s = step("train", "train one model")
    s.add_argument("--model", required=False)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s = step("evaluate", "sample and score one trained run")
    s.add_argument("--model")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--run", required=True)
    s.add_argument("--classifier", required=True)
    s.add_argument("--out", required=True)
    for name, help_ in (("sweep", "FD against network evaluations: each sampler at each step count"),
                        ("guidance", "classifier-free guidance: FD and conditional accuracy per weight"),
                        ("probe", "GAN inversion vs. encoder, linear probe, perceptual path length"),
                        ("curve", "FD of the weight snapshots a run kept: quality against training compute")):
        s = step(name, help_)
        s.add_argument("--model")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--run", required=True)
        s.add_argument("--classifier", required=True)
        s.add_argument("--out", required=True)
    s = step("dynamics", "short runs over seeds and random hyperparameters; the .detach() ablation")
    s.add_argument("--model")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--classifier", required=True)
    s.add_argument("--out", required=True)
    s = step("reproduce", "re-run one model at one seed; does it land within the paper's spread?")
    s.add_argument("--model", required=False)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--summary", required=True, help="the paper's results/<profile>/summary.json")
    s.add_argument("--classifier", required=True)
    s.add_argument("--out", required=True, help="results/<profile>/reproduce/<model>/seed<k>")
    s = step("reference", "score real data (floor) and noise (ceiling)")
    s.add_argument("--classifier", required=True)
    s.add_argument("--out", required=True)
    s = step("summarize", "collect results files into one summary")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--sweeps", nargs="*", default=[])
    s.add_argument("--guidance", nargs="*", default=[])
    s.add_argument("--dynamics", nargs="*", default=[])
    s.add_argument("--probes", nargs="*", default=[])
    s.add_argument("--curves", nargs="*", default=[])
    s.add_argument("--reference", required=True)
    s.add_argument("--classifier", required=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("figures", help="draw the figures from the summary")
    s.add_argument("--summary", required=True)
    s.add_argument("--runs", required=True, help="JSON: model -> run folder")
    s.add_argument("--evals", required=True, help="JSON: model -> evaluation folder")
    s.add_argument("--sweeps", default="{}", help="JSON: model -> sampling-sweep folder")
    s.add_argument("--guidance", default="{}", help="JSON: model -> guidance-sweep folder")
    s.add_argument("--dynamics", default="{}", help="JSON: model -> training-dynamics folder")
    s.add_argument("--probes", default="{}", help="JSON: model -> probe folder")
    s.add_argument("--data-root", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("tables", help="write the LaTeX tables from the summary")
    s.add_argument("--summary", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("claims", help="test the claims ledger against the summary: verdicts and their tables")
    s.add_argument("--summary", required=True)
    s.add_argument("--ledger", default="paper/claims.yaml")
    s.add_argument("--out", required=True, help="results/<profile>/claims.json")
    s.add_argument("--tables", required=True, help="folder for claims.tex and comparison.tex")
    s = sub.add_parser("render", help="render the paper's templates")
    s.add_argument("--claims", help="results/<profile>/claims.json (the ledger's verdicts)")
    s.add_argument("--provenance", help="results/<profile>/provenance.json (the templates' `prov`)")
    s.add_argument("--templates", default="paper")
    s.add_argument("--summary", required=True)
    s.add_argument("--figures", default="figures")
    s.add_argument("--tables", default="tables")
    s.add_argument("--out", required=True)
    s = sub.add_parser("latex", help="build the PDF with latexmk")
    s.add_argument("--dir", required=True)
    s.add_argument("--out", required=True)
    s = step("provenance", "record commit, config hash, hardware, versions, and time and memory of every compute job")
    s.add_argument("--benchmarks", help="JSON: rule -> its jobs' benchmark files (as the Snakefile passes them)")
    s.add_argument("--benchmark-dir", help="or a benchmarks/<profile> folder, read for the compute rules "
                                           "(default: the profile's)")
    s.add_argument("--out", required=True, help="results/<profile>/provenance.json")
    s = sub.add_parser("arxiv", help="package the built paper (tex, .bbl, figures, tables) for arXiv")
    s.add_argument("--dir", default="build/paper", help="the rendered paper, after latexmk")
    s.add_argument("--main", default="main.tex")
    s.add_argument("--out", required=True, help="build/<profile>/arxiv.tar.gz")

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        return _run(args)
    except Exception as e:
        if type(e).__name__ not in USER_ERRORS:
            raise
        print(f"\nerror: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.cmd == "prepare-data":
        from .data import prepare
        spec = _spec(args, "data")
        prepare(spec["dataset"], spec["data_root"], spec["debian_dir"], args.manifest)
    elif args.cmd == "train-classifier":
        from .evaluation.classifier import train_classifier
        train_classifier(_spec(args, "classifier"), args.out, args.threads)
    elif args.cmd == "train":
        from .training.train import train
        train(_spec(args, "train"), args.out, args.threads)
    elif args.cmd == "evaluate":
        from .evaluation.evaluate import evaluate_run
        evaluate_run(_spec(args, "eval"), args.run, args.classifier, args.out, args.threads)
    elif args.cmd == "sweep":
        from .studies.sweeps import sweep_run
        sweep_run(_spec(args, "sweep"), args.run, args.classifier, args.out, args.threads)
    elif args.cmd == "guidance":
        from .studies.sweeps import guidance_run
        guidance_run(_spec(args, "guidance"), args.run, args.classifier, args.out, args.threads)
    elif args.cmd == "dynamics":
        from .studies.dynamics import dynamics_run
        dynamics_run(_spec(args, "dynamics"), args.classifier, args.out, args.threads)
    elif args.cmd == "probe":
        from .studies.probes import probe_run
        probe_run(_spec(args, "probe"), args.run, args.classifier, args.out, args.threads)
    elif args.cmd == "curve":
        from .studies.curves import curve_run
        curve_run(_spec(args, "curve"), args.run, args.classifier, args.out, args.threads)
    elif args.cmd == "reproduce":
        from .studies.reproduce import reproduce
        reproduce(_spec(args, "reproduce"), args.summary, args.classifier, args.out, args.threads)
    elif args.cmd == "reference":
        from .evaluation.evaluate import reference
        reference(_spec(args, "reference"), args.classifier, args.out, args.threads)
    elif args.cmd == "summarize":
        from .summary.collect import collect
        collect(_spec(args, "summary"), args.metrics, args.reference, args.classifier, args.manifest, args.out,
                args.sweeps, args.guidance, args.dynamics, args.probes, args.curves)
    elif args.cmd == "figures":
        from .publish.figures import make_figures
        make_figures(args.summary, json.loads(args.runs), json.loads(args.evals), args.data_root, args.out,
                     json.loads(args.sweeps), json.loads(args.guidance), json.loads(args.dynamics),
                     json.loads(args.probes))
    elif args.cmd == "tables":
        from .publish.tables import write_tables
        write_tables(json.loads(open(args.summary).read()), args.out)
    elif args.cmd == "claims":
        from .publish.claims import write_claims
        write_claims(args.summary, args.ledger, args.out, args.tables)
    elif args.cmd == "render":
        from .publish.render import render
        render(args.templates, args.summary, args.out, args.figures, args.tables, claims=args.claims,
               provenance=args.provenance)
    elif args.cmd == "latex":
        from .publish.latex import build_pdf
        build_pdf(args.dir, args.out)
    elif args.cmd == "provenance":
        from .summary import provenance as prov
        from .paths import Paths
        cfg = _spec(args, "config")
        files = (json.loads(args.benchmarks) if args.benchmarks else
                 prov.benchmark_files(args.benchmark_dir or Paths(cfg["profile"]).benchmarks))
        prov.write(cfg, files, args.out)
    elif args.cmd == "arxiv":
        from .publish.arxiv import build
        build(args.dir, args.out, args.main)
    return 0


if __name__ == "__main__":
    sys.exit(main())
