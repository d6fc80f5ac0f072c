# Configuration, validated before any job runs, and the names of every file.
import json
import sys
import tempfile
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "code"))
from genreview import config as C  # noqa: E402
from genreview.data import missing_data_message  # noqa: E402
from genreview.models import REGISTRY  # noqa: E402
from genreview.evaluation.metrics import InceptionWeightsMissing, check_inception_weights  # noqa: E402
from genreview.paths import Paths  # noqa: E402

try:
    CFG = C.resolve(config)
    for _model in CFG["models"]:
        C.train_spec(CFG, _model, 0)  # the model configs' own checks, before any job
    check_inception_weights(CFG.get("eval", {}).get("inception_weights"))
except (C.ConfigError, InceptionWeightsMissing) as e:
    raise WorkflowError(f"\n{e}\n")
# Snakemake's own check, against the schema generated from the config dataclasses (validate reads a file)
with tempfile.TemporaryDirectory() as _schema_dir:
    validate(CFG, C.write_schema(Path(_schema_dir) / "config.schema.json"), set_default=False)

_missing = missing_data_message(CFG["dataset"], CFG["data"]["root"], CFG["data"]["debian_dir"])
if _missing:
    raise WorkflowError(f"\n{_missing}\n")

CLUSTER = C.cluster_config(config)  # job sizes for a cluster scheduler; validated with the rest by C.resolve
PY = sys.executable
P = Paths(CFG["profile"], CFG["data"]["root"], CFG["dataset"])
MODELS = CFG["models"]
SEEDS = CFG["seeds"]
SWEEP_MODELS = C.sweep_models(CFG)
GUIDANCE_MODELS = C.guidance_models(CFG)
DYNAMICS_MODELS = C.dynamics_models(CFG)
PROBE_MODELS = C.probe_models(CFG)
CURVE_MODELS = C.curve_models(CFG)
# Threads of each compute job on this machine: all cores (one job at a time), or threads_per_job so that short
# jobs (the smoke profile's) run side by side. A cluster executor gives no --cores (then workflow.cores raises).
_CORES = workflow.resource_settings.cores
JOB_THREADS = min(CFG.get("threads_per_job") or _CORES, _CORES) if _CORES else 1


def job_threads(kind):
    """threads: of a compute job of one kind (config.JOB_KINDS). Evaluated per job, once the executor is known:
    submitted to a cluster (or running inside a cluster job) it is cluster.threads[kind], the CPUs the job asks
    for; run here, JOB_THREADS."""
    def threads(wildcards):
        return CLUSTER["threads"][kind] if not workflow.local_exec or workflow.remote_exec else JOB_THREADS
    return threads


def res(kind):
    """resources: of a compute job of one kind: mem_mb and runtime (minutes) from the config's `cluster:`, and
    gpu=1 for the jobs that train or sample a network when cluster.gpu is on and the device may be CUDA. A local
    run is constrained only by the resources given with --resources, so these never hold a local job back."""
    out = {"mem_mb": CLUSTER["mem_mb"][kind], "runtime": CLUSTER["runtime"][kind]}
    if CLUSTER["gpu"] and CFG["device"] != "cpu" and kind in C.GPU_KINDS:
        out["gpu"] = 1
        if kind == "train":  # GMM and HMM are fitted by EM on the CPU: their jobs ask for no GPU
            out["gpu"] = lambda wildcards: 0 if REGISTRY[wildcards.model][0].classical else 1
    return out


# Presentation and bookkeeping jobs (seconds, no network) run on the submitting machine under a cluster executor;
# prepare_data too, since a login node can download MNIST or CIFAR-10 where compute nodes often cannot.
localrules: prepare_data, summarize, claims, figures, tables, render, latex, provenance, arxiv


def spec(d):
    """A step's spec as one JSON argument; as a param it reruns the step when it changes."""
    return json.dumps(d, sort_keys=True)


wildcard_constraints:
    model="|".join(MODELS),
    seed=r"\d+",
