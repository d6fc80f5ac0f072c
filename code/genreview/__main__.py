"""Command line: one subcommand per pipeline step (Snakemake calls these; so can you).

    python -m genreview train --config config.yaml --model vae --seed 0 --out results/small/vae/seed0

Each step takes either --spec (the JSON the Snakefile passes) or --config (a config.yaml,
resolved with its profile, optionally --profile to override it).
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from dataclasses import dataclass
from typing import Callable


def _spec(args, kind: str) -> dict:
    """The step's spec: --spec as given, or config.<kind>_spec of the resolved --config (`config`: the whole
    resolved config, which provenance hashes)."""
    if args.spec:
        return json.loads(args.spec)
    from . import config as C
    raw = C.load(args.config)
    if args.profile:
        raw["profile"] = args.profile
    cfg = C.resolve(raw, args.config)
    if kind == "config":
        return cfg
    make = getattr(C, f"{kind}_spec")
    return make(cfg, args.model, args.seed) if kind in PER_RUN else make(cfg)


# The spec kinds of one model at one seed (--model, --seed); the others take the whole config.
PER_RUN = {"train", "eval", "sweep", "guidance", "dynamics", "probe", "curve", "reproduce", "judge"}


def _benchmark_files(cfg: dict, args) -> dict:
    from . import provenance as prov
    from .paths import Paths
    return (json.loads(args.benchmarks) if args.benchmarks else
            prov.benchmark_files(args.benchmark_dir or Paths(cfg["profile"]).benchmarks))


def _write_provenance(fn, cfg: dict, args):
    """provenance.write with the jobs' logs (where each job ran): --logs as the Snakefile passes them, else the
    log beside each benchmark file under --log-dir (by the rules' naming)."""
    from . import provenance as prov
    from .paths import Paths
    files = _benchmark_files(cfg, args)
    if args.logs:
        logs = json.loads(args.logs)
    elif args.benchmarks:
        logs = {}
    else:
        paths = Paths(cfg["profile"])
        logs = prov.log_files(files, args.benchmark_dir or paths.benchmarks, args.log_dir or paths.logs)
    return fn(cfg, files, args.out, logs)


@dataclass(frozen=True)
class Command:
    """One subcommand. spec: the kind of spec it reads (see _spec), None for a command that takes no
    --spec/--config (it reads results files); call: "module:function" under genreview, imported when the
    command runs; run(function, spec, args) calls it; args: its own options, (flags, argparse keywords)."""
    help: str
    spec: str | None
    call: str
    run: Callable
    args: tuple = ()


def _load_json(path):
    from .files import load_json
    return load_json(path)


def _req(help_: str | None = None) -> dict:
    return {"required": True, "help": help_} if help_ else {"required": True}


MODEL_SEED = (("--model", {}), ("--seed", {"type": int, "default": 0}))
# the reference rule's features file, which a scoring job loads instead of running the classifier over the test split
REFERENCE = ("--reference", {"default": None, "help": "the reference features file (default: computed here)"})
RUN = (*MODEL_SEED, ("--run", _req()), ("--classifier", _req()), REFERENCE, ("--out", _req()))


def _on_run(fn, spec, a):  # the studies of one trained run
    return fn(spec, a.run, a.classifier, a.out, a.threads, reference=a.reference)


COMMANDS: dict[str, Command] = {
    "prepare-data": Command(
        "put the dataset in torchvision's layout; write a manifest", "data", "data:prepare",
        lambda fn, s, a: fn(s["dataset"], s["data_root"], s["debian_dir"], a.manifest),
        (("--manifest", _req()),)),
    "train-classifier": Command(
        "train the frozen domain classifier of the protocol", "classifier", "evaluation.classifier:train_classifier",
        lambda fn, s, a: fn(s, a.out, a.threads), (("--out", _req()),)),
    "train": Command(
        "train one model", "train", "training.train:train", lambda fn, s, a: fn(s, a.out, a.threads),
        (("--model", {"required": False}), MODEL_SEED[1], ("--out", _req()))),
    "evaluate": Command(
        "sample and score one trained run", "eval", "evaluation.evaluate:evaluate_run", _on_run, RUN),
    "sweep": Command(
        "FD against network evaluations: each sampler at each step count", "sweep", "studies.sweeps:sweep_run",
        _on_run, RUN),
    "guidance": Command(
        "classifier-free guidance: FD and conditional accuracy per weight", "guidance",
        "studies.sweeps:guidance_run", _on_run, RUN),
    "probe": Command(
        "GAN inversion vs. encoder, linear probe, perceptual path length", "probe", "studies.probes:probe_run",
        lambda fn, s, a: fn(s, a.run, a.classifier, a.out, a.threads),
        (*MODEL_SEED, ("--run", _req()), ("--classifier", _req()), ("--out", _req()))),
    "curve": Command(
        "FD of the weight snapshots a run kept: quality against training compute", "curve",
        "studies.curves:curve_run", _on_run, RUN),
    "dynamics": Command(
        "short runs over seeds and random hyperparameters; the .detach() ablation", "dynamics",
        "studies.dynamics:dynamics_run",
        lambda fn, s, a: fn(s, a.classifier, a.out, a.threads, reference=a.reference, main_run=a.main_run),
        (*MODEL_SEED, ("--classifier", _req()), REFERENCE, ("--out", _req()),
         ("--main-run", {"default": None, "help": "the model's main train_summary.json: its precision and "
                                                 "memory format (default: fp32, contiguous)"}))),
    "train-judges": Command(
        "train the judges beside the domain classifier (another classifier, a label-free autoencoder)", "judges",
        "evaluation.judges:train_judges", lambda fn, s, a: fn(s, a.out, a.threads),
        (("--out", _req("results/<profile>/judges")),)),
    "judge": Command(
        "score one run's samples in every judge's feature space", "judge", "evaluation.judges:judge_run",
        lambda fn, s, a: fn(s, a.samples, a.metrics, a.classifier, a.judges, a.out, a.threads,
                            reference=a.reference),
        (*MODEL_SEED, ("--samples", _req("the run's eval/<model>/seed<k>/samples.pt")),
         ("--metrics", _req("the run's eval/<model>/seed<k>/metrics.json")), ("--classifier", _req()), REFERENCE,
         ("--judges", _req("the train_judges rule's folder, results/<profile>/judges")),
         ("--out", _req("results/<profile>/judges/<model>/seed<k>")))),
    "reproduce": Command(
        "re-run one model at one seed; does it land within the paper's spread?", "reproduce",
        "publish.reproduce_report:reproduce_and_report",
        lambda fn, s, a: fn(s, a.summary, a.classifier, a.out, a.threads),
        (("--model", {"required": False}), MODEL_SEED[1],
         ("--summary", _req("the paper's results/<profile>/summary.json")), ("--classifier", _req()),
         ("--out", _req("results/<profile>/reproduce/<model>/seed<k>")))),
    "reference": Command(
        "score real data (floor) and noise (ceiling)", "reference", "evaluation.evaluate:reference",
        lambda fn, s, a: fn(s, a.classifier, a.out, a.threads, features=a.features),
        (("--classifier", _req()), ("--out", _req()),
         ("--features", {"default": None, "help": "also save the reference's classifier features here"}))),
    "summarize": Command(
        "collect results files into one summary", "summary", "summary.collect:collect",
        lambda fn, s, a: fn(s, a.metrics, a.reference, a.classifier, a.manifest, a.out, a.sweeps, a.guidance,
                            a.dynamics, a.probes, a.curves, a.judges),
        (("--metrics", {"nargs": "+", "required": True}),
         *((f"--{k}", {"nargs": "*", "default": []})
           for k in ("sweeps", "guidance", "dynamics", "probes", "curves", "judges")),
         ("--reference", _req()), ("--classifier", _req()), ("--manifest", _req()), ("--out", _req()))),
    "figures": Command(
        "draw the figures from the summary", None, "publish.figures:make_figures",
        lambda fn, _, a: fn(a.summary, json.loads(a.runs), json.loads(a.evals), a.data_root, a.out,
                            json.loads(a.sweeps), json.loads(a.guidance), json.loads(a.dynamics),
                            json.loads(a.probes), claims_path=a.claims),
        (("--summary", _req()), ("--runs", _req("JSON: model -> run folder")),
         ("--evals", _req("JSON: model -> evaluation folder")),
         ("--sweeps", {"default": "{}", "help": "JSON: model -> sampling-sweep folder"}),
         ("--claims", {"default": None, "help": "claims.json: the verdicts along training compute"}),
         ("--guidance", {"default": "{}", "help": "JSON: model -> guidance-sweep folder"}),
         ("--dynamics", {"default": "{}", "help": "JSON: model -> training-dynamics folder"}),
         ("--probes", {"default": "{}", "help": "JSON: model -> probe folder"}),
         ("--data-root", _req()), ("--out", _req()))),
    "tables": Command(
        "write the LaTeX tables from the summary", None, "publish.tables:write_tables",
        lambda fn, _, a: fn(_load_json(a.summary), a.out), (("--summary", _req()), ("--out", _req()))),
    "claims": Command(
        "test the claims ledger against the summary: verdicts and their tables", None,
        "publish.tables.claims:write_claims", lambda fn, _, a: fn(a.summary, a.ledger, a.out, a.tables),
        (("--summary", _req()), ("--ledger", {"default": "paper/claims.yaml"}),
         ("--out", _req("results/<profile>/claims.json")),
         ("--tables", _req("folder for claims.tex and comparison.tex")))),
    "render": Command(
        "render the paper's templates", None, "publish.render:render",
        lambda fn, _, a: fn(a.templates, a.summary, a.out, a.figures, a.tables, claims=a.claims,
                            provenance=a.provenance),
        (("--claims", {"help": "results/<profile>/claims.json (the ledger's verdicts)"}),
         ("--provenance", {"help": "results/<profile>/provenance.json (the templates' `prov`)"}),
         ("--templates", {"default": "paper"}), ("--summary", _req()), ("--figures", {"default": "figures"}),
         ("--tables", {"default": "tables"}), ("--out", _req()))),
    "check": Command(
        "load every results file the paper reads; name each missing or unreadable one with its fix", None,
        "files:check_files", lambda fn, _, a: fn(a.files, a.out),
        (("files", {"nargs": "+"}), ("--out", _req("results/<profile>/checked.json")))),
    "latex": Command(
        "build the PDF with latexmk", None, "publish.latex:build_pdf", lambda fn, _, a: fn(a.dir, a.out),
        (("--dir", _req()), ("--out", _req()))),
    "provenance": Command(
        "record commit, config hash, hardware, versions, and time and memory of every compute job", "config",
        "provenance:write", _write_provenance,
        (("--benchmarks", {"help": "JSON: rule -> its jobs' benchmark files (as the Snakefile passes them)"}),
         ("--logs", {"help": "JSON: benchmark file -> the log of its job, which says where the job ran"}),
         ("--benchmark-dir", {"help": "or a benchmarks/<profile> folder, read for the compute rules "
                                      "(default: the profile's)"}),
         ("--log-dir", {"help": "with --benchmark-dir: the logs/<profile> folder (default: the profile's)"}),
         ("--out", _req("results/<profile>/provenance.json")))),
    "arxiv": Command(
        "package the built paper (tex, .bbl, figures, tables) for arXiv", None, "publish.arxiv:build",
        lambda fn, _, a: fn(a.dir, a.out, a.main),
        (("--dir", {"default": "build/paper", "help": "the rendered paper, after latexmk"}),
         ("--main", {"default": "main.tex"}), ("--out", _req("build/<profile>/arxiv.tar.gz")))),
}

# Errors that mean bad input: shown as one clear message, without a traceback.
USER_ERRORS = {"ConfigError", "DataError", "LatexError", "RenderError", "InceptionWeightsMissing", "LedgerError"}
USER_ERRORS |= {"ReproduceError"}  # reproduce: a model missing from the summary, or a diverged run
USER_ERRORS |= {"ArxivError", "ProvenanceError"}  # the paper not built yet; no benchmark files
USER_ERRORS |= {"ResultsFileError"}  # a results or model file missing or unreadable: named, with its rebuild command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genreview", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, cmd in COMMANDS.items():
        s = sub.add_parser(name, help=cmd.help)
        if cmd.spec is not None:  # a pipeline step: its spec from --spec or from a config.yaml
            g = s.add_mutually_exclusive_group()
            g.add_argument("--spec", help="JSON spec (as written by the Snakefile)")
            g.add_argument("--config", default="config.yaml", help="config.yaml to resolve (default)")
            s.add_argument("--profile", choices=["smoke", "small", "full"])
            s.add_argument("--threads", type=int)
        for flag, kwargs in cmd.args:
            s.add_argument(flag, **kwargs)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
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
    cmd = COMMANDS[args.cmd]
    module, function = cmd.call.split(":")
    fn = getattr(importlib.import_module(f".{module}", __package__ or "genreview"), function)
    spec = _spec(args, cmd.spec) if cmd.spec is not None else None
    if spec is not None and spec.get("deterministic"):  # config.yaml `deterministic: true`
        from .utils import set_deterministic
        set_deterministic(True)
    cmd.run(fn, spec, args)
    if cmd.spec is not None:  # a pipeline step: where it ran, into its log (read back by the provenance record)
        from . import provenance as prov
        logging.getLogger("genreview").info(prov.job_hardware_line(prov.job_hardware(args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
