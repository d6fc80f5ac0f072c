"""config.yaml: validation against the JSON schema, profiles, and the per-step specs.

The Snakefile and the command line share this module. `resolve` validates the raw
config, applies the chosen profile's overrides and validates again; the `*_spec`
functions cut out what one step needs, so that a step reruns only when its own part of
the config changes.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from pathlib import Path

import jsonschema
import yaml

from . import config_schema
from .hparams import hp
from .evaluation.classifier import ClassifierConfig
from .data import dataset_hparams
from .evaluation.metrics import EvalConfig
from .models import REGISTRY, renamed_hint
from .training.config import DIVERGENCE_POLICY, TrainConfig



class ConfigError(ValueError):
    """config.yaml is invalid; the message names the key and what to do."""


def sections() -> dict[str, type]:
    """config.yaml's sections that hold one config dataclass's fields: key -> dataclass."""
    from .evaluation.judges import JudgesConfig
    from .studies.curves import CurvesConfig
    from .studies.dynamics import DynamicsConfig
    from .studies.probes import ProbeConfig
    from .studies.reproduce import ReproduceConfig
    from .studies.sweeps import GuidanceConfig, SweepConfig
    return {"classifier": ClassifierConfig, "eval": EvalConfig, "sweep": SweepConfig, "guidance": GuidanceConfig,
            "dynamics": DynamicsConfig, "probe": ProbeConfig, "curves": CurvesConfig, "reproduce": ReproduceConfig,
            "judges": JudgesConfig, "cluster": ClusterConfig}


def load_schema() -> dict:
    """The JSON schema of config.yaml: schemas/config.schema.yaml completed from the dataclasses
    (genreview.config_schema)."""
    return config_schema.build(sections())


def write_schema(path: str | Path) -> str:
    """Write the schema as JSON to `path` (for Snakemake's `validate`, which reads a file); returns its path."""
    return config_schema.write(load_schema(), path)


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found")
    return yaml.safe_load(path.read_text()) or {}


# --------------------------------------------------------------------------- validation

def _keys_at(schema: dict, root: dict, node: dict) -> set[str]:
    """Property names a schema node allows, following $ref (enough for this schema's shape)."""
    keys = set(node.get("properties", {}))
    if "$ref" in node:
        keys |= _keys_at(schema, root, _deref(root, node["$ref"]))
    return keys


def _deref(root: dict, ref: str) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _dotted(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _message(err: jsonschema.ValidationError, root: dict, source: str) -> str:
    where = _dotted(err.absolute_path)
    if err.validator in ("additionalProperties", "unevaluatedProperties"):
        extra = re.findall(r"'([^']+)'", err.message.split("(")[-1]) or ["?"]
        allowed = sorted(_keys_at(root, root, err.schema))
        parts = []
        for key in extra:
            full = f"{where}.{key}" if err.absolute_path else key
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = renamed_hint(key) or (f" (did you mean '{close[0]}'?)" if close else "")
            parts.append(f"{source}: unknown key '{full}'{hint}. Allowed here: {', '.join(allowed)}")
        return "\n".join(parts)
    if err.validator == "enum" and "propertyNames" in err.schema_path:
        return (f"{source}: '{where}' has the key {err.instance!r}{renamed_hint(err.instance)}, not one of "
                f"{', '.join(map(str, err.validator_value))}")
    if err.validator == "enum":
        return (f"{source}: '{where}' is {err.instance!r}{renamed_hint(err.instance)}, not one of "
                f"{', '.join(map(str, err.validator_value))}")
    if err.validator == "type":
        hint = ""
        if isinstance(err.instance, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", err.instance):
            hint = f" (YAML reads {err.instance} as text: write it with a decimal point, e.g. 1.0e-3)"
        return f"{source}: '{where}' must be of type {err.validator_value}, got {err.instance!r}{hint}"
    if err.validator == "required":
        return f"{source}: {err.message} at '{where}'"
    return f"{source}: '{where}': {err.message}"


def validate(cfg: dict, source: str = "config.yaml") -> None:
    """Raise ConfigError naming every offending key."""
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("\n".join(dict.fromkeys(_message(e, schema, source) for e in errors)))


# --------------------------------------------------------------------------- profiles

def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve(raw: dict, source: str = "config.yaml") -> dict:
    """Validate, apply `profiles[profile]`, validate the result, and fill top-level defaults."""
    validate(raw, source)
    profile = raw["profile"]
    cfg = deep_merge({k: v for k, v in raw.items() if k != "profiles"}, raw.get("profiles", {}).get(profile) or {})
    validate(cfg, f"{source} (profile {profile})")
    cfg.pop("cluster", None)  # where jobs run, not what they compute: see cluster_config
    cfg.setdefault("dataset", "fashion_mnist")
    cfg.setdefault("models", list(REGISTRY))
    cfg.setdefault("seeds", [0])
    cfg.setdefault("device", "auto")
    cfg["data"] = {"root": "data", "debian_dir": "/usr/share/datasets/fashion-mnist", **cfg.get("data", {})}
    cfg["paper"] = {"title": "Generative models, measured: a review with its experiments",
                    "authors": "The genreview authors", **cfg.get("paper", {})}
    return cfg


# --------------------------------------------------------------------------- cluster jobs

# The kinds of compute job that a cluster scheduler sizes (rules/common.smk's `res`), and those that train or
# sample a network, which ask for a GPU.
JOB_KINDS = ("classifier", "train", "sample", "dynamics", "reproduce", "reference")
GPU_KINDS = ("classifier", "train", "sample", "dynamics", "reproduce")


_PER_KIND = {"$ref": "#/$defs/per_job_kind"}


@dataclasses.dataclass
class ClusterConfig:
    """Job sizes for a cluster scheduler (`snakemake --profile profiles/slurm`), by kind of job; ignored by
    local runs. The defaults are declared here only: config.yaml's `cluster:` (and `profiles.<name>.cluster`)
    override them. gpu: the network jobs ask for one GPU (unless `device: cpu`); threads, mem_mb and runtime
    (minutes): kind -> value, a partial mapping overriding these defaults kind by kind."""
    gpu: bool = hp(True, doc="network jobs (classifier, train, sample, dynamics, reproduce) ask for one GPU, "
                             "unless device is cpu")
    threads: dict = hp({"classifier": 4, "train": 8, "sample": 4, "dynamics": 4, "reproduce": 8, "reference": 4},
                       doc="CPUs per job (sbatch --cpus-per-task)", schema=_PER_KIND)
    mem_mb: dict = hp({"classifier": 8000, "train": 16000, "sample": 16000, "dynamics": 16000, "reproduce": 16000,
                       "reference": 8000}, doc="memory per job in MB (sbatch --mem)", schema=_PER_KIND)
    runtime: dict = hp({"classifier": 60, "train": 720, "sample": 240, "dynamics": 720, "reproduce": 960,
                        "reference": 60}, doc="wall-time limit per job in minutes (sbatch -t)", schema=_PER_KIND)


def cluster_config(raw: dict) -> dict:
    """The `cluster:` job sizes of the chosen profile: the defaults of ClusterConfig, the top-level section and
    `profiles.<profile>.cluster`, merged in that order. `resolve` leaves the section out of the resolved config,
    so that sizing jobs for a cluster changes no step's spec and not the config hash the paper prints."""
    over = (raw.get("profiles", {}).get(raw["profile"]) or {}).get("cluster") or {}
    return deep_merge(deep_merge(dataclasses.asdict(ClusterConfig()), raw.get("cluster") or {}), over)


# --------------------------------------------------------------------------- per-step specs

_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _base(cfg: dict) -> dict:
    base = {"dataset": cfg["dataset"], "data_root": cfg["data"]["root"], "device": cfg["device"]}
    if cfg.get("deterministic"):  # only when on, so that the specs (and run ids) of other runs stay as they were
        base["deterministic"] = True
    return base


def data_spec(cfg: dict) -> dict:
    return {"dataset": cfg["dataset"], "data_root": cfg["data"]["root"], "debian_dir": cfg["data"]["debian_dir"]}


def model_seeds(cfg: dict, model: str) -> list[int]:
    """The seeds of one model's main runs: seeds_by_model[model] where given, else seeds."""
    return list(cfg.get("seeds_by_model", {}).get(model, cfg["seeds"]))


def summary_spec(cfg: dict) -> dict:
    return {"profile": cfg["profile"], "dataset": cfg["dataset"], "models": cfg["models"], "seeds": cfg["seeds"],
            "seeds_by_model": {m: model_seeds(cfg, m) for m in cfg["models"] if model_seeds(cfg, m) != cfg["seeds"]},
            "eval": eval_config(cfg), "sweep": sweep_config(cfg), "guidance": guidance_config(cfg),
            "dynamics": dynamics_config(cfg), "probe": probe_config(cfg), "curves": curves_config(cfg)}


def classifier_spec(cfg: dict) -> dict:
    return {**_base(cfg), "seed": 0, "classifier": dataclasses.asdict(ClassifierConfig(**cfg.get("classifier", {})))}


def train_spec(cfg: dict, model: str, seed: int, snapshots: bool = True) -> dict:
    """What one training run depends on. A model of `curve_models` keeps curves.snapshots weight
    snapshots (snapshots=False, for the dynamics study's short runs, keeps none); `train.snapshots` is
    left out of the spec when it is 0, so that the specs (and run ids) of runs without snapshots stay
    what they were before snapshots existed."""
    over = {**dataset_hparams(cfg["dataset"], model), **cfg.get("hparams", {}).get(model, {})}
    train = {**cfg.get("train", {}), **{k: v for k, v in over.items() if k in _TRAIN_FIELDS}}
    hparams = {k: v for k, v in over.items() if k not in _TRAIN_FIELDS}
    _, cfg_cls = REGISTRY[model]
    try:
        model_cfg = cfg_cls(**hparams)
    except ValueError as e:
        raise ConfigError(f"config.yaml: hparams.{model}: {e}") from e
    train = dataclasses.asdict(TrainConfig(**train))
    if not snapshots:
        train["snapshots"] = 0
    elif model in curve_models(cfg):
        train["snapshots"] = curves_config(cfg)["snapshots"]
    if not train["snapshots"]:
        del train["snapshots"]
    if train["on_divergence"] == "record":  # the default policy: specs (and run ids) stay what they were before retries
        for k in DIVERGENCE_POLICY:
            del train[k]
    return {**_base(cfg), "model": model, "seed": int(seed),
            "hparams": dataclasses.asdict(model_cfg), "train": train}


def eval_config(cfg: dict) -> dict:
    return dataclasses.asdict(EvalConfig(**cfg.get("eval", {})))


def eval_spec(cfg: dict, model: str, seed: int) -> dict:
    return {**_base(cfg), "model": model, "seed": int(seed), "eval": eval_config(cfg)}


def reference_spec(cfg: dict) -> dict:
    return {**_base(cfg), "eval": eval_config(cfg)}


def sweep_config(cfg: dict) -> dict:
    from .studies.sweeps import SweepConfig
    return dataclasses.asdict(SweepConfig(**{k: v for k, v in cfg.get("sweep", {}).items() if k != "every_seed"}))


def study_seeds(cfg: dict, study: str, model: str) -> list[int]:
    """The seeds at which `study` (sweep, probe) runs on `model`: every seed of its main runs (`model_seeds`) where
    the study's `every_seed` lists the model or is absent, else the first seed only (a study no claim reads at
    other seeds need not cost them)."""
    seeds = model_seeds(cfg, model)
    every = (cfg.get(study) or {}).get("every_seed")
    return seeds if every is None or model in every else seeds[:1]


def guidance_config(cfg: dict) -> dict:
    from .studies.sweeps import GuidanceConfig
    return dataclasses.asdict(GuidanceConfig(**cfg.get("guidance", {})))


def sweep_models(cfg: dict) -> list[str]:
    """The built models that the sampling-cost sweep covers, in `models` order."""
    return [m for m in cfg["models"] if m in sweep_config(cfg)["models"]]


def guidance_models(cfg: dict) -> list[str]:
    return [m for m in cfg["models"] if m in guidance_config(cfg)["models"]]


def sweep_spec(cfg: dict, model: str, seed: int) -> dict:
    return {**eval_spec(cfg, model, seed), "sweep": sweep_config(cfg)}


def guidance_spec(cfg: dict, model: str, seed: int) -> dict:
    return {**eval_spec(cfg, model, seed), "guidance": guidance_config(cfg)}


# The latent-variable models that `probe` measures by default (reconstruction, linear probe, path length).
PROBE_MODELS = ["vae", "dcgan", "wgan", "wgan_gp", "cgan", "stylegan"]


def dynamics_config(cfg: dict) -> dict:
    from .studies.dynamics import DynamicsConfig
    return dataclasses.asdict(DynamicsConfig(**cfg.get("dynamics", {})))


def probe_config(cfg: dict) -> dict:
    from .studies.probes import ProbeConfig
    return dataclasses.asdict(ProbeConfig(**{k: v for k, v in cfg.get("probe", {}).items()
                                             if k not in ("models", "every_seed")}))


def dynamics_models(cfg: dict) -> list[str]:
    """The built models that the training-dynamics study covers, in `models` order."""
    return [m for m in cfg["models"] if m in dynamics_config(cfg)["models"]]


def probe_models(cfg: dict) -> list[str]:
    return [m for m in cfg["models"] if m in cfg.get("probe", {}).get("models", PROBE_MODELS)]


def dynamics_spec(cfg: dict, model: str, seed: int) -> dict:
    # the short runs are scored in the domain classifier's features only (no Inception FID on every run)
    return {**_base(cfg), "model": model, "seed": int(seed), "train_spec": train_spec(cfg, model, seed, False),
            "eval": {**eval_config(cfg), "inception_weights": None}, "dynamics": dynamics_config(cfg)}


def probe_spec(cfg: dict, model: str, seed: int) -> dict:
    return {**eval_spec(cfg, model, seed), "probe": probe_config(cfg)}


def curves_config(cfg: dict) -> dict:
    from .studies.curves import CurvesConfig
    return dataclasses.asdict(CurvesConfig(**cfg.get("curves", {})))


def curve_models(cfg: dict) -> list[str]:
    """The built models that the quality-against-compute curves cover, in `models` order. Only models
    trained by gradient steps keep snapshots, and only models that draw samples can be scored."""
    from .models import DISPLAY

    models = [m for m in cfg["models"] if m in curves_config(cfg)["models"]]
    for m in models:
        if REGISTRY[m][0].classical:
            raise ConfigError(f"config.yaml: curves.models lists {m}, which is fitted in one call by its own "
                              f"algorithm and keeps no snapshots: remove it from curves.models")
        if DISPLAY[m][1] == "translation":
            raise ConfigError(f"config.yaml: curves.models lists {m}, an image-to-image model that draws no "
                              f"samples to score: remove it from curves.models")
    return models


def curve_spec(cfg: dict, model: str, seed: int) -> dict:
    # like the dynamics study's runs, the snapshots are scored in the domain classifier's features only
    return {**_base(cfg), "model": model, "seed": int(seed), "eval": {**eval_config(cfg), "inception_weights": None},
            "curves": curves_config(cfg)}


def judges_config(cfg: dict) -> dict:
    """The judges' settings, less `models` (which runs are judged changes no job's spec)."""
    from .evaluation.judges import JudgesConfig
    out = dataclasses.asdict(JudgesConfig(**cfg.get("judges", {})))
    del out["models"]
    return out


def judge_models(cfg: dict) -> list[str]:
    """The built models whose samples the judges score, in `models` order: judges.models, or (null) every model
    that draws samples; not the image-to-image models, scored on their translations."""
    from .models import DISPLAY

    listed = cfg.get("judges", {}).get("models")
    for m in listed or []:
        if m in cfg["models"] and DISPLAY[m][1] == "translation":
            raise ConfigError(f"config.yaml: judges.models lists {m}, an image-to-image model that draws no "
                              f"samples to judge: remove it from judges.models")
    return [m for m in cfg["models"] if (m in listed if listed is not None else DISPLAY[m][1] != "translation")]


def judges_spec(cfg: dict) -> dict:
    """What training the judges depends on: the judges' settings, and the evaluation's (which test images form
    the reference, N of the floor and the ceiling, the metrics' settings)."""
    return {**_base(cfg), "judges": judges_config(cfg), "eval": {**eval_config(cfg), "inception_weights": None}}


def judge_spec(cfg: dict, model: str, seed: int) -> dict:
    # scored in the judges' features only (no Inception FID: metrics.json has it)
    return {**_base(cfg), "model": model, "seed": int(seed), "eval": {**eval_config(cfg), "inception_weights": None},
            "judges": judges_config(cfg)}


def reproduce_config(cfg: dict) -> dict:
    from .studies.reproduce import ReproduceConfig
    return dataclasses.asdict(ReproduceConfig(**cfg.get("reproduce", {})))


def reproduce_spec(cfg: dict, model: str, seed: int) -> dict:
    """A reviewer's re-run of one model at one seed: the train and eval specs of the paper's runs (so the
    same seed repeats the same computation), the verdict's tolerances, and the resolved config's hash (the
    provenance record's, so that it can be compared with the paper's)."""
    from .provenance import config_hash

    if model not in REGISTRY:
        close = difflib.get_close_matches(model, list(REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"reproduce: unknown model '{model}'{hint}; the models are {', '.join(REGISTRY)}")
    rerun = {**cfg, "deterministic": True}  # a re-run is deterministic wherever PyTorch can make it so
    return {"profile": cfg["profile"], "model": model, "seed": int(seed),
            "train": train_spec(rerun, model, seed), "eval": eval_spec(rerun, model, seed),
            "reproduce": reproduce_config(cfg), "config_hash": config_hash(cfg)}
