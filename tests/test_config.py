"""config.yaml: profiles resolve, every mistake is named with its key, the schema stays in
step with the dataclasses, and the Snakefile stops on a bad key before any job runs."""
from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest
import yaml

from genreview import config as C
from genreview.evaluation.classifier import ClassifierConfig
from genreview.evaluation.metrics import EvalConfig
from genreview.models import REGISTRY, build, config_fields
from genreview.training.config import TRAIN_FIELDS, TrainConfig

from conftest import CONFIG_YAML, DEBIAN_DIR, copy_workflow, load_raw_config, snakemake_cmd, snakemake_env

PROFILES = ["smoke", "small", "full"]


# --------------------------------------------------------------------------- profiles

@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_resolves(profile):
    raw = load_raw_config()
    raw["profile"] = profile
    cfg = C.resolve(raw)
    assert cfg["profile"] == profile and "profiles" not in cfg
    over = raw["profiles"].get(profile) or {}
    # Every override of the profile reaches the step that uses it.
    for key, value in (over.get("train") or {}).items():
        for m in cfg["models"]:
            spec = C.train_spec(cfg, m, 0)
            if key not in (over.get("hparams", {}).get(m) or {}):
                assert spec["train"][key] == value, f"profiles.{profile}.train.{key} did not reach {m}'s TrainConfig"
    for m, hp in (over.get("hparams") or {}).items():
        spec = C.train_spec(cfg, m, 0)
        for key, value in hp.items():
            where = "train" if key in TRAIN_FIELDS else "hparams"
            assert spec[where][key] == value, f"profiles.{profile}.hparams.{m}.{key} did not reach spec[{where!r}]"
    for key, value in (over.get("eval") or {}).items():
        assert C.eval_spec(cfg, cfg["models"][0], 0)["eval"][key] == value
    for key, value in (over.get("classifier") or {}).items():
        assert C.classifier_spec(cfg)["classifier"][key] == value
    if "seeds" in over:
        assert cfg["seeds"] == over["seeds"]
    # Keys set above the profiles block and not overridden survive the merge.
    for key, value in (raw.get("train") or {}).items():
        if key not in (over.get("train") or {}):
            assert cfg["train"][key] == value
    # Every step's spec builds (the dataclasses accept what the config holds).
    for m in cfg["models"]:
        for seed in cfg["seeds"]:
            C.train_spec(cfg, m, seed)
            C.eval_spec(cfg, m, seed)
    for make in (C.classifier_spec, C.reference_spec, C.summary_spec, C.data_spec):
        assert make(cfg)


def test_profile_override_does_not_leak_into_other_profiles():
    raw = load_raw_config()
    raw["profile"] = "smoke"
    smoke = C.resolve(raw)
    raw["profile"] = "full"
    full = C.resolve(raw)
    assert C.train_spec(smoke, "vae", 0)["hparams"] != C.train_spec(full, "vae", 0)["hparams"]
    assert raw["profiles"]["smoke"], "resolve must not consume the raw config"


# --------------------------------------------------------------------------- mistakes, named

def _raises(raw) -> str:
    with pytest.raises(C.ConfigError) as e:
        C.resolve(raw)
    return str(e.value)


def _with(path: str, value, base=None) -> dict:
    raw = base if base is not None else load_raw_config()
    node = raw
    *parents, leaf = path.split(".")
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[leaf] = value
    return raw


@pytest.mark.parametrize("path, suggestion", [
    ("modles", "models"),
    ("hparams.vae.latnt_dim", "latent_dim"),
    ("profiles.smoke.hparams.ddpm.timestep", "timesteps"),
    ("profiles.smoke.train.epohcs", "epochs"),
    ("profiles.smoke.modles", "models"),
    ("eval.n_sample", "n_samples"),
    ("data.rot", "root"),
    ("hparams.dcgn", "dcgan"),
])
def test_unknown_key_is_named_with_a_suggestion(path, suggestion):
    msg = _raises(_with(path, 3))
    assert f"unknown key '{path}'" in msg, f"the message does not name the key {path!r}:\n{msg}"
    assert f"did you mean '{suggestion}'" in msg, f"no suggestion {suggestion!r}:\n{msg}"
    assert "config.yaml" in msg


def test_every_mistake_is_reported_at_once():
    raw = _with("data.rot", "x", _with("modles", [1]))
    msg = _raises(raw)
    assert "'modles'" in msg and "'data.rot'" in msg, msg


def test_wrong_type_is_named():
    msg = _raises(_with("hparams.vae.lr", "abc"))
    assert "'hparams.vae.lr'" in msg and "number" in msg and "'abc'" in msg, msg
    assert "decimal point" not in msg, "the YAML hint is only for numbers YAML read as text"


def test_exponent_without_decimal_point_gets_the_yaml_hint():
    text = CONFIG_YAML.read_text()
    raw = yaml.safe_load(text + "\nhparams:\n  vae:\n    lr: 1e-3\n")
    assert raw["hparams"]["vae"]["lr"] == "1e-3", "PyYAML reads 1e-3 as a string (YAML 1.1); the hint relies on it"
    msg = _raises(raw)
    assert "'hparams.vae.lr'" in msg and "decimal point" in msg and "1.0e-3" in msg, msg
    raw["hparams"]["vae"]["lr"] = 1.0e-3
    C.resolve(raw)


def test_unknown_model_name_is_named():
    msg = _raises(_with("models", ["vae", "gan"]))
    assert "'models[1]'" in msg and "'gan'" in msg, msg
    for m in REGISTRY:
        assert m in msg, f"the message should list the known models; {m} missing:\n{msg}"



OLD_NAME = [("models", ["vae", "cfg"], "'models[1]'"), ("guidance.models", ["cfg"], "'guidance.models[0]'"),
            ("profiles.smoke.hparams.cfg", {"width": 8}, "profiles.smoke.hparams.cfg")]


@pytest.mark.parametrize("path,value,where", OLD_NAME)
def test_the_old_name_of_guided_ldm_is_named_with_the_new_one(path, value, where):
    msg = _raises(_with(path, value))
    assert where in msg and "'cfg' was renamed 'guided_ldm'" in msg, msg
    with pytest.raises(KeyError, match="'cfg' was renamed 'guided_ldm'"):
        build("cfg", {}, (1, 28, 28))

def test_bad_profile_name_and_value_range():
    assert "'profile'" in _raises(_with("profile", "smok"))
    msg = _raises(_with("profiles.smoke.eval.n_samples", 3))
    assert "profiles.smoke.eval.n_samples" in msg, msg


def test_missing_config_file(tmp_path):
    with pytest.raises(C.ConfigError, match="not found"):
        C.load(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- schema <-> dataclasses

def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _schema_keys(defs: dict, node: dict) -> set[str]:
    """Property names of a schema definition, with those of the definitions it $ref's (GAN variants extend
    a shared one)."""
    keys = set(node.get("properties", {}))
    if "$ref" in node:
        keys |= _schema_keys(defs, defs[node["$ref"].split("/")[-1]])
    return keys


def test_schema_matches_the_dataclasses():
    schema = C.load_schema()
    defs = schema["$defs"]
    train = set(defs["train_fields"]["properties"])
    assert train == _fields(TrainConfig), f"schema train_fields vs TrainConfig: {train ^ _fields(TrainConfig)}"
    settings = defs["settings"]["properties"]
    assert set(settings["hparams"]["properties"]) == set(REGISTRY)
    assert defs["model_name"]["enum"] == list(REGISTRY)
    for name, (_, cfg_cls) in REGISTRY.items():
        ref = settings["hparams"]["properties"][name]["$ref"].split("/")[-1]  # variants share a definition
        allowed = _schema_keys(defs, defs[ref]) | train
        assert allowed == config_fields(name) | TRAIN_FIELDS, (
            f"schema hparams.{name} vs {cfg_cls.__name__} + TrainConfig: "
            f"{allowed ^ (config_fields(name) | TRAIN_FIELDS)}")
        assert not config_fields(name) & TRAIN_FIELDS, (
            f"{cfg_cls.__name__} shares field names with TrainConfig; train_spec would route them to training")
    assert set(settings["classifier"]["properties"]) == _fields(ClassifierConfig)
    assert set(settings["eval"]["properties"]) == _fields(EvalConfig)
    from genreview.studies.sweeps import GuidanceConfig, SweepConfig
    assert set(settings["sweep"]["properties"]) == _fields(SweepConfig) | {"every_seed"}
    assert set(settings["guidance"]["properties"]) == _fields(GuidanceConfig)
    from genreview.studies.dynamics import DynamicsConfig
    from genreview.studies.probes import ProbeConfig
    assert set(settings["dynamics"]["properties"]) == _fields(DynamicsConfig)
    assert set(settings["probe"]["properties"]) == _fields(ProbeConfig) | {"models", "every_seed"}
    from genreview.studies.curves import CurvesConfig
    assert set(settings["curves"]["properties"]) == _fields(CurvesConfig)


_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "list": "array",
               "dict": "object"}


def _expected_type(annotation):
    annotation = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    names = [a.strip().split("[")[0] for a in annotation.split("|")]
    out = [_JSON_TYPES.get(n, "null") for n in names]
    return out[0] if len(out) == 1 else out


def test_generated_schema_declares_every_dataclass_field_with_its_type_and_bounds():
    """The schema is generated from the dataclasses: every field is a property with the type of its annotation
    (or an enum or $ref instead), and the bounds its `hp(...)` declares, in its base class for a variant."""
    from genreview.hparams import _declared

    schema = C.load_schema()
    defs, settings = schema["$defs"], schema["$defs"]["settings"]["properties"]
    nodes = [(TrainConfig, defs["train_fields"]["properties"])]
    nodes += [(cls, settings[key]["properties"]) for key, cls in C.sections().items()]
    nodes += [(cls, defs[settings["hparams"]["properties"][m]["$ref"].split("/")[-1]]["properties"])
              for m, (_, cls) in REGISTRY.items()]
    for cls, props in nodes:
        for f in dataclasses.fields(cls):
            node = props.get(f.name)
            assert node is not None, f"{cls.__name__}.{f.name} is missing from the generated schema"
            if "enum" not in node and "$ref" not in node:
                assert node["type"] == _expected_type(f.type), f"{cls.__name__}.{f.name}: {node}"
            for key, value in _declared(cls, f.name).items():
                if key != "items":
                    assert node[key] == value, f"{cls.__name__}.{f.name}: {key} {node.get(key)} != {value}"
    bounded = [m for m, (_, cls) in REGISTRY.items() if all(_declared(cls, f.name) for f in dataclasses.fields(cls)
                                                            if f.type not in ("bool", bool))]
    assert bounded == list(REGISTRY), "every model hyperparameter but a switch declares its bounds with hp(...)"


@pytest.mark.parametrize("path, value, words", [
    ("hparams.ddpm.timesteps", "many", ["'hparams.ddpm.timesteps'", "integer", "'many'"]),
    ("hparams.ddpm.timesteps", 1, ["'hparams.ddpm.timesteps'", "minimum of 2"]),
    ("hparams.flow.alpha", 0.5, ["'hparams.flow.alpha'", "0.5"]),
    ("hparams.ddpm.mults", [2, 0], ["'hparams.ddpm.mults[1]'", "minimum of 1"]),
    ("hparams.wgan_gp.critic_norm", "batch", ["'hparams.wgan_gp.critic_norm'", "'batch'", "layer, none"]),
    ("hparams.wgan.lr_g", 0, ["'hparams.wgan.lr_g'"]),  # a variant's default, its base class's bound
    ("hparams.guided_ldm.cond_drop", 1.5, ["'hparams.guided_ldm.cond_drop'", "maximum of 1"]),
    ("profiles.smoke.hparams.vae.lr", 0.0, ["'profiles.smoke.hparams.vae.lr'"]),
    ("hparams.wgan.clp", 0.1, ["unknown key 'hparams.wgan.clp'", "did you mean 'clip'"]),
    ("hparams.cgan.epochs", 0, ["'hparams.cgan.epochs'", "minimum of 1"]),
    ("train.retry_lr_factor", 1.5, ["'train.retry_lr_factor'", "maximum of 1"]),
    ("cluster.gpu", "yes", ["'cluster.gpu'", "boolean"]),
])
def test_a_model_hparam_of_wrong_type_or_out_of_bounds_is_named(path, value, words):
    msg = _raises(_with(path, value))
    for w in words:
        assert w in msg, f"{w!r} not in the message:\n{msg}"


@pytest.mark.parametrize("path, value, where, bound", [
    ("eval.n_samples", 10_000_000_000, "eval.n_samples", 10**6),
    ("eval.n_samples_by_model", {"pixelcnn": 10**7}, "eval.n_samples_by_model.pixelcnn", 10**6),
    ("profiles.smoke.train.max_steps", 10**9, "profiles.smoke.train.max_steps", 10**8),
    ("hparams.vae.epochs", 10**6, "hparams.vae.epochs", 10**4),
    ("hparams.gmm.max_iter", 10**6, "hparams.gmm.max_iter", 10**4),
    ("hparams.ddpm.timesteps", 10**7, "hparams.ddpm.timesteps", 10**5),
    ("sweep.steps", [10, 10**7], "sweep.steps[1]", 10**5),
    ("dynamics.draws", 10**5, "dynamics.draws", 10**3),
    ("curves.snapshots", 10**5, "curves.snapshots", 10**3),
    ("probe.seed", 2**40, "probe.seed", 2**32 - 1),
])
def test_a_value_that_makes_a_run_endless_is_named_with_its_bound(path, value, where, bound):
    msg = _raises(_with(path, value))
    assert f"'{where}'" in msg and f"maximum of {bound}" in msg, f"no '{where}' and its bound {bound}:\n{msg}"


# What sets how long a job runs, by the field's name; the depth of a flow (FlowConfig.steps) and a learning-rate
# warm-up's length do not.
_ENDLESS = re.compile(r"(^|_)(epochs|steps|iter|timesteps|snapshots|draws|samples|images|subsets|seeds|n)$")
_NOT_A_LENGTH = {("FlowConfig", "steps"), ("*", "warmup_steps")}


def test_every_size_that_sets_a_run_length_has_an_upper_bound():
    """hparams.py's rule: a count of steps, epochs, images, iterations, timesteps, snapshots or draws declares a
    maximum, so that a new field of that kind cannot bring back an endless run."""
    from genreview.hparams import _declared

    classes = [TrainConfig, *C.sections().values(), *(cls for _, cls in REGISTRY.values())]
    unbounded = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            if (not _ENDLESS.search(f.name) or "int" not in str(f.type)
                    or {(cls.__name__, f.name), ("*", f.name)} & _NOT_A_LENGTH):
                continue
            node = _declared(cls, f.name)
            if "maximum" not in node and "maximum" not in node.get("items", {}):
                unbounded.append(f"{cls.__name__}.{f.name}")
    assert not unbounded, f"declare a maximum (genreview/hparams.py says which) for {', '.join(unbounded)}"


def test_snakemake_validate_reads_the_generated_schema(tmp_path):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    raw = load_raw_config()
    raw["profile"] = "smoke"
    cfg = C.resolve(raw)
    path = C.write_schema(tmp_path / "config.schema.json")
    validate(cfg, path, set_default=False)
    cfg["hparams"] = {"vae": {"lr": -1.0}}
    with pytest.raises(WorkflowError):
        validate(cfg, path, set_default=False)


def test_dataclass_defaults_are_valid_config():
    raw = {"profile": "smoke",
           "train": dataclasses.asdict(TrainConfig()),
           "classifier": dataclasses.asdict(ClassifierConfig()),
           "eval": dataclasses.asdict(EvalConfig()),
           "hparams": {m: dataclasses.asdict(cls()) for m, (_, cls) in REGISTRY.items()}}
    C.validate(raw)


# --------------------------------------------------------------------------- the Snakefile

def _dry_run(workdir):
    return subprocess.run(snakemake_cmd("-n", "--cores", "1"), cwd=workdir, capture_output=True, text=True,
                          timeout=180, env=snakemake_env())


def test_snakemake_stops_on_an_unknown_key(tmp_path):
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"the control run needs Fashion-MNIST in {DEBIAN_DIR} (Debian package dataset-fashion-mnist)")
    raw = load_raw_config()
    raw["data"] = {"root": str(tmp_path / "data"), "debian_dir": str(DEBIAN_DIR)}
    good = copy_workflow(tmp_path / "good", raw)
    bad = copy_workflow(tmp_path / "bad", _with("hparams.vae.latnt_dim", 4, load_raw_config() | {"data": raw["data"]}))

    ok = _dry_run(good)
    assert ok.returncode == 0, f"the unmodified config should dry-run:\n{ok.stdout[-3000:]}\n{ok.stderr[-3000:]}"
    r = _dry_run(bad)
    out = r.stdout + r.stderr
    assert r.returncode != 0, "snakemake -n accepted a config with an unknown key"
    assert "unknown key 'hparams.vae.latnt_dim'" in out and "did you mean 'latent_dim'" in out, out[-3000:]
    assert "Traceback" not in out, f"the error should be a friendly message, not a traceback:\n{out[-3000:]}"


def test_seeds_by_model_gives_a_model_its_own_seeds_and_names_a_wrong_model():
    raw = load_raw_config()
    raw.update(profile="smoke", seeds=[0], seeds_by_model={"vae": [0, 1, 2]})
    cfg = C.resolve(raw)
    assert C.model_seeds(cfg, "vae") == [0, 1, 2] and C.model_seeds(cfg, "dcgan") == [0]
    assert C.summary_spec(cfg)["seeds_by_model"] == {"vae": [0, 1, 2]}
    raw["seeds_by_model"] = {"vea": [0, 1]}
    with pytest.raises(C.ConfigError, match="vea"):
        C.resolve(raw)


def test_every_seed_limits_a_study_to_the_first_seed_of_the_models_it_leaves_out():
    """sweep.every_seed and probe.every_seed: the models studied at every seed of their main runs; the others at
    their first only; absent, every model at every seed. The study's jobs never see the key, and a wrong model
    name is named."""
    raw = load_raw_config()
    raw.update(profile="smoke", seeds=[0], seeds_by_model={"vae": [0, 1, 2], "dcgan": [0, 1]})
    raw["sweep"] = {**raw.get("sweep", {}), "every_seed": ["vae"]}
    raw["probe"] = {**raw.get("probe", {}), "every_seed": None}
    cfg = C.resolve(raw)
    assert C.study_seeds(cfg, "sweep", "vae") == [0, 1, 2] and C.study_seeds(cfg, "sweep", "dcgan") == [0]
    assert C.study_seeds(cfg, "probe", "dcgan") == [0, 1], "null: every seed"
    assert "every_seed" not in C.sweep_config(cfg) and "every_seed" not in C.probe_config(cfg)
    raw["sweep"]["every_seed"] = ["vea"]
    with pytest.raises(C.ConfigError, match="vea"):
        C.resolve(raw)
