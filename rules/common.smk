# Configuration, validated before any job runs, and the names of every file.
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "code"))
from genreview import config as C  # noqa: E402
from genreview.data import missing_data_message  # noqa: E402
from genreview.metrics import InceptionWeightsMissing, check_inception_weights  # noqa: E402
from genreview.paths import Paths, figure_names, table_names  # noqa: E402

try:
    CFG = C.resolve(config)
    for _model in CFG["models"]:
        C.train_spec(CFG, _model, 0)  # the model configs' own checks, before any job
    check_inception_weights(CFG.get("eval", {}).get("inception_weights"))
except (C.ConfigError, InceptionWeightsMissing) as e:
    raise WorkflowError(f"\n{e}\n")
validate(CFG, "../code/genreview/schemas/config.schema.yaml", set_default=False)

_missing = missing_data_message(CFG["dataset"], CFG["data"]["root"], CFG["data"]["debian_dir"])
if _missing:
    raise WorkflowError(f"\n{_missing}\n")

PY = sys.executable
P = Paths(CFG["profile"], CFG["data"]["root"], CFG["dataset"])
MODELS = CFG["models"]
SEEDS = CFG["seeds"]
SWEEP_MODELS = C.sweep_models(CFG)
GUIDANCE_MODELS = C.guidance_models(CFG)
DYNAMICS_MODELS = C.dynamics_models(CFG)
PROBE_MODELS = C.probe_models(CFG)
CURVE_MODELS = C.curve_models(CFG)
# Threads of each compute job: all cores (one job at a time), or threads_per_job so that short jobs
# (the smoke profile's) run side by side.
JOB_THREADS = min(CFG.get("threads_per_job") or workflow.cores, workflow.cores)


def spec(d):
    """A step's spec as one JSON argument; as a param it reruns the step when it changes."""
    return json.dumps(d, sort_keys=True)


wildcard_constraints:
    model="|".join(MODELS),
    seed=r"\d+",
