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


def _classical(wildcards):
    """Whether the job's model (its `model` wildcard, if any) is fitted by EM on the CPU (GMM, HMM)."""
    entry = REGISTRY.get(getattr(wildcards, "model", None))
    return bool(entry and entry[0].classical)


def job_threads(kind):
    """threads: of a compute job of one kind (config.JOB_KINDS). Evaluated per job, once the executor is known:
    submitted to a cluster (or running inside a cluster job) it is cluster.threads[kind], the CPUs the job asks
    for, or one CPU for every job of a classical model (GMM, HMM: fitted and sampled on the CPU, no GPU); run
    here, JOB_THREADS."""
    def threads(wildcards):
        if not workflow.local_exec or workflow.remote_exec:
            return 1 if _classical(wildcards) else CLUSTER["threads"][kind]
        return JOB_THREADS
    return threads


def res(kind):
    """resources: of a compute job of one kind: mem_mb and runtime (minutes) from the config's `cluster:`, and
    gpu=1 for the jobs that train or sample a network when cluster.gpu is on and the device may be CUDA (gpu=0
    for every job of a classical model: GMM and HMM are fitted by EM on the CPU). The jobs of a model's chain
    (CHAIN_KINDS) also hold one CHAIN_SLOT, which runs them one after another inside their group job. A local
    run is constrained only by the resources given with --resources, so these never hold a local job back."""
    out = {"mem_mb": CLUSTER["mem_mb"][kind], "runtime": CLUSTER["runtime"][kind]}
    if CLUSTER["gpu"] and CFG["device"] != "cpu" and kind in C.GPU_KINDS:
        out["gpu"] = lambda wildcards: 0 if _classical(wildcards) else 1
    if kind in CHAIN_KINDS:
        out[CHAIN_SLOT] = chain_slot
    return out


# One model at one seed is a chain: train, then evaluate, sweep, guidance, probe and curve of that run. Under a
# cluster executor each chain goes out as one group job (group: CHAIN_GROUP, a group id per model and seed), so
# that a submitted GPU job holds the whole chain rather than seconds of work each; Snakemake ignores groups in a
# local run (`snakemake --cores N` schedules every job on its own, as before). A group asks SLURM for the sum of
# what its members that could run side by side ask for, unless a constraint stacks them: profiles/slurm gives
# `--resources chain_slot=1 --set-resource-scopes chain_slot=local`, so the members run one after another on one
# GPU (their benchmark times stay those of a job alone) and the group asks for the largest member's CPUs, memory
# and GPU, and for the sum of the members' runtimes. The chain waits for the classifier (an input of its studies).
CHAIN_KINDS = ("train", "sample")
CHAIN_SLOT = "chain_slot"
CHAIN_GROUP = "chain_{model}_seed{seed}"


def chain_slot(wildcards):
    """The chain_slot resource of a chain's job: 1. Evaluated per job, once the executor is known (the Snakefile
    is read before): submitting to a cluster without the limit of one slot per group job is an error."""
    if not workflow.local_exec and not workflow.remote_exec and not (
            workflow.global_resources.get(CHAIN_SLOT).value == 1 and workflow.resource_scopes.is_local(CHAIN_SLOT)):
        raise WorkflowError(
            f"\nA cluster executor submits each model's chain as one group job, which needs --resources "
            f"{CHAIN_SLOT}=1 --set-resource-scopes {CHAIN_SLOT}=local (else the group asks for one GPU per study that "
            f"could run side by side): run with --profile profiles/slurm, or add both to your profile.\n")
    return 1


# Presentation and bookkeeping jobs (seconds, no network) run on the submitting machine under a cluster executor;
# prepare_data too, since a login node can download MNIST or CIFAR-10 where compute nodes often cannot.
localrules: prepare_data, summarize, claims, figures, tables, render, latex, provenance, arxiv


def spec(d):
    """A step's spec as one JSON argument; as a param it reruns the step when it changes."""
    return json.dumps(d, sort_keys=True)


wildcard_constraints:
    model="|".join(MODELS),
    seed=r"\d+",
