"""What a training run is told: `TrainConfig` (the settings every model shares, overridden per model under
`hparams.<model>`), the run id its checkpoints carry, the divergence policy, the weight snapshots' steps,
and the cost figures of a run that the summary carries."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


from ..hparams import hp



@dataclass
class TrainConfig:
    epochs: int = hp(5, minimum=1, maximum=10**4)
    max_steps: int = hp(0, minimum=0, maximum=10**8)  # > 0 stops after this many steps (smoke runs)
    batch_size: int = hp(128, minimum=1)
    sample_epochs: list[int] = hp([1, 10, 20, 25], items={"minimum": 1, "maximum": 10**4})
    sample_grid: int = hp(64, minimum=1, maximum=10**6)  # images per progress grid
    checkpoint_every: int = hp(200, minimum=1)       # steps; also at every epoch end
    checkpoint_minutes: float = hp(5.0, minimum=0, maximum=10**4,
                                   doc="also checkpoint when this many minutes of wall time passed since the "
                                       "last checkpoint (0 = off); changes no result")
    log_every: int = hp(10, minimum=1)               # steps per JSONL line (losses averaged over them)
    explode_threshold: float = hp(1e6, exclusive_minimum=0)  # |loss| above this counts as divergence
    precision: str = hp("auto", enum=["auto", "fp32", "bf16"])  # auto: measured
    memory_format: str = hp("auto", enum=["auto", "channels_last", "contiguous"])  # auto: measured
    snapshots: int = hp(0, minimum=0, maximum=10**3,
                         doc="weights kept at this many log-spaced steps (0 = none); set by curves for its models")
    on_divergence: str = hp("record", enum=["record", "retry"],
                            doc="a diverged run: record it and stop, or restart from step 0 at a lower learning rate")
    divergence_retries: int = hp(2, minimum=0, maximum=100,
                                 doc="retry: at most this many restarts after the first divergence")
    retry_lr_factor: float = hp(0.5, exclusive_minimum=0, maximum=1,
                                doc="retry: every optimiser's learning rate x this, once more per restart")

    def __post_init__(self):
        if self.on_divergence not in ("record", "retry"):
            raise ValueError(f"train.on_divergence is {self.on_divergence!r}: use record or retry")
        if self.divergence_retries < 0 or not 0 < self.retry_lr_factor <= 1:
            raise ValueError(f"train.divergence_retries ({self.divergence_retries}) must be >= 0 and "
                             f"train.retry_lr_factor ({self.retry_lr_factor}) in (0, 1]")


# The precision and memory format measured for a model on a machine: a file beside its seeds' run folders.
SPEED_SETTINGS = "speed_settings.json"
# The trainer keeps fp32/contiguous unless another precision or memory format saves this fraction of a step.
CLEARLY_FASTER = 0.1

SNAPSHOT_START = 0.02  # the first snapshot falls at this fraction of the run


def snapshot_steps(total: int, n: int) -> list[int]:
    """The steps at which a run of `total` steps keeps its weights: n steps spaced log-uniformly from
    SNAPSHOT_START of the run to its last step, rounded, duplicates dropped (so fewer than n for a
    short run); the last step is always one of them. Empty when n or total is 0."""
    if n <= 0 or total <= 0:
        return []
    first = max(1, round(SNAPSHOT_START * total))
    if n == 1 or first >= total:
        return [total]
    steps = {round(first * (total / first) ** (i / (n - 1))) for i in range(n)}
    return sorted(steps | {total})


class Diverged(RuntimeError):
    """A loss that is not finite or above explode_threshold, first at training step `step`."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


DIVERGENCE_POLICY = ("on_divergence", "divergence_retries", "retry_lr_factor")
# Settings that change when a run checkpoints, never what it computes: a checkpoint written under one value resumes
# under another, so run_id leaves them out (and a run's id is what it was before they existed).
RESULT_NEUTRAL = ("checkpoint_minutes",)


def run_id(spec: dict) -> str:
    """Hash of everything that determines a run, so a stale checkpoint is never resumed.

    Under the default policy (on_divergence "record") the policy's keys change nothing and are left out,
    so such runs keep the ids they had before the policy existed. Under "retry" they count: a checkpoint
    of a restarted attempt holds its attempt number and learning-rate scale, which hold only for the same
    retry_lr_factor and divergence_retries. The RESULT_NEUTRAL settings never count."""
    return hashlib.sha1(json.dumps(_without_default_policy(spec), sort_keys=True).encode()).hexdigest()[:16]


def _without_default_policy(o):
    if isinstance(o, dict):
        default = o.get("on_divergence") == "record"
        return {k: _without_default_policy(v) for k, v in o.items()
                if not (default and k in DIVERGENCE_POLICY) and not ("checkpoint_every" in o and k in RESULT_NEUTRAL)}
    if isinstance(o, list):
        return [_without_default_policy(v) for v in o]
    return o


# Convenience for the tests and for users: a TrainConfig's fields.
TRAIN_FIELDS = set(asdict(TrainConfig()).keys())
# The cost figures of train_summary.json that the summary carries per model (seed statistics of each).
TRAIN_METRICS = ["train_seconds", "ms_per_step", "images_seen", "steps", "epochs", "params", "sampling_params",
                 "images_per_s", "peak_memory_mb", "flops_per_step", "train_flops", "generator_updates"]
