"""The training hot path never waits for the GPU: no model's train_step and no trainer step between two read
points brings a tensor to the host; the results stay bit-for-bit those of the code that did (the EMA's fused
update, the window means, the counters mirrored in Python); a divergence between two read points is still
reported at its step; wall-time checkpoints change no result."""
from __future__ import annotations

import copy
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from genreview.data import Batches
from genreview.diffusion.schedule import NoiseSchedule, make_betas
from genreview.models import REGISTRY, build
from genreview.models.base import EMA, GenerativeModel, mirrored
from genreview.training.config import TrainConfig, run_id
from genreview.training.trainer import LossWindow, Trainer
from genreview.utils import cuda_speed_flags, seed_everything

from conftest import CPU, SHAPE, smoke_hparams

GRADIENT_TRAINED = sorted(n for n, (cls, _) in REGISTRY.items() if not cls.classical)
PACKAGE = str(Path(sys.modules["genreview"].__file__).parent) + os.sep
BASE = TrainConfig(epochs=1, batch_size=32, sample_epochs=[], sample_grid=4, checkpoint_every=10**6, log_every=5,
                   checkpoint_minutes=0, precision="fp32", memory_format="contiguous")

# Ways a tensor's value reaches Python; on CUDA each one waits for every queued kernel.
HOST_READS = ("item", "tolist", "numpy", "__float__", "__int__", "__index__", "__bool__", "__format__", "__repr__",
              "__array__")
# Calls that read CPU tensors by design: StyleGAN's style-mixing coin and crossover come from the CPU generator
# (torch.rand(()) with no device), so they never wait for the GPU.
HOST_DRAWS = {("stylegan.py", "_training_ws")}


def count_host_reads(monkeypatch) -> list:
    """From now on, (file, function, method) of every HOST_READS call made from genreview's code, in a list."""
    calls = []
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            frame = sys._getframe(1)
            if frame.f_code.co_filename.startswith(PACKAGE):
                calls.append((Path(frame.f_code.co_filename).name, frame.f_code.co_name, _name))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.fixture
def host_reads(monkeypatch):
    return count_host_reads(monkeypatch)


def _steps(model, batch, n, opts, scheds):
    x, y = batch
    for _ in range(n):
        model.train_step(x, y, opts)
        for s in scheds:
            s.step()


# --------------------------------------------------------------------------- (a) no host reads

@pytest.mark.parametrize("name", GRADIENT_TRAINED)
def test_train_step_reads_nothing_from_the_device(name, small_train, monkeypatch):
    """After a warm-up step (lazy initialisation: ActNorm's data-dependent init), train_step brings no tensor to
    the host: the step counters (WGAN's critic turns, StyleGAN's lazy R1, the LDM's stage, the EMA's warm-up) are
    Python values mirrored in buffers. LDM: 8 planned steps, so the counted steps cross its stage switch."""
    seed_everything(0)
    model = build(name, smoke_hparams(name), SHAPE)
    opts = model.configure_optimizers()
    scheds = model.lr_schedulers(opts, 8)
    batch = next(Batches(small_train, 16, 0, CPU).epoch(0))
    _steps(model, batch, 1, opts, scheds)
    calls = count_host_reads(monkeypatch)
    _steps(model, batch, 4, opts, scheds)
    monkeypatch.undo()
    reads = [c for c in calls if c[:2] not in HOST_DRAWS]
    assert not reads, f"{name}: train_step read tensors on the host: {sorted(set(reads))}"


def test_the_trainer_reads_only_at_read_points(small_train, tmp_path, host_reads):
    """log_every 5, 9 steps, no checkpoint or epoch end before the last: the trainer and the model read nothing on
    steps 1-4 and 6-8, and read at steps 5 (a log line) and 9 (the last)."""
    seen = []  # host reads so far, at the start of each step
    model = build("vae", smoke_hparams("vae"), SHAPE)
    real_step = model.train_step

    def train_step(*args, **kwargs):
        seen.append(len(host_reads))
        return real_step(*args, **kwargs)

    model.train_step = train_step
    cfg = replace(BASE, max_steps=9)
    Trainer(cfg, tmp_path, 0, CPU, rid="r").fit(model, Batches(small_train, cfg.batch_size, 0, CPU))
    seen.append(len(host_reads))
    during = [b - a for a, b in zip(seen, seen[1:])]  # reads during step k (model and trainer), k = 1..9
    assert during[:4] == [0] * 4 and during[5:8] == [0] * 3, \
        f"reads per step {during}: {host_reads}"
    assert during[4] > 0 and during[8] > 0, f"the log line at step 5 and the last step must read: {during}"


# --------------------------------------------------------------------------- (b) the same numbers

def _ema_reference_update(ema: EMA, net: nn.Module) -> None:
    """The EMA update as it was: per-tensor lerp_ and copy_, t read from the buffer."""
    with torch.no_grad():
        ema.updates += 1
        t = ema.updates.item()
        d = min(ema.decay, (1 + t) / (10 + t))
        for e, p in zip(ema.net.parameters(), net.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(ema.net.buffers(), net.buffers()):
            e.copy_(b)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_the_fused_ema_update_is_the_per_tensor_one_bit_for_bit(device):
    """_foreach_lerp_ equals lerp_ per parameter through the warm-up (weights 1 - d above and below 1/2, lerp's
    two formulas), BatchNorm statistics are copied, and after load_state_dict the counter resumes from the
    buffer."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3))
    net = net.to(device)
    fused, reference = EMA(net, 0.995), EMA(net, 0.995)
    for i in range(40):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
            net(torch.randn(8, 1, 28, 28, device=device))  # BatchNorm's running statistics move
        fused.update(net)
        _ema_reference_update(reference, net)
        if i == 20:  # a resumed run: a fresh EMA loaded from the state dict
            resumed = EMA(net, 0.995)
            resumed.load_state_dict(fused.state_dict())
            assert mirrored(resumed, "updates") == 21
            fused = resumed
    a, b = fused.state_dict(), reference.state_dict()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"the fused EMA update differs from the per-tensor one in {differ}"
    assert mirrored(fused, "updates") == int(fused.updates) == 40


def test_the_window_means_are_the_python_float_means():
    """The float64 device sums give exactly sum(float(v)) / n, the means the log held when every step was read
    into Python floats, also across a checkpoint taken mid-window (its sums as Python floats)."""
    g = torch.Generator().manual_seed(0)
    steps = [{"loss": torch.randn((), generator=g) * 10 ** torch.randint(-8, 8, (), generator=g),
              "aux": torch.rand((), generator=g).to(torch.bfloat16)} for _ in range(11)]
    window = LossWindow(1e30)
    for k, losses in enumerate(steps[:6], 1):
        window.add(k, losses)
    window.read(6)
    resumed = LossWindow(1e30, json.loads(json.dumps(window.state())))  # as a checkpoint keeps it
    for k, losses in enumerate(steps[6:], 7):
        resumed.add(k, losses)
    last = resumed.read(11)
    expected = {key: sum(float(s[key]) for s in steps) / len(steps) for key in ("loss", "aux")}
    assert resumed.means() == expected and last == float(steps[-1]["loss"])
    resumed.clear()
    with pytest.raises(ValueError, match="same keys every step"):
        resumed.add(12, {"loss": torch.zeros(())})


@pytest.mark.parametrize("name", GRADIENT_TRAINED)
def test_the_mirrored_counters_come_back_with_the_state_dict(name, small_train):
    """A model loaded from another's state dict mid-run holds the same Python counters (read from the buffers
    once, on load), and they agree with the buffers."""
    seed_everything(0)
    model = build(name, smoke_hparams(name), SHAPE)
    opts = model.configure_optimizers()
    scheds = model.lr_schedulers(opts, 8)
    _steps(model, next(Batches(small_train, 16, 0, CPU).epoch(0)), 3, opts, scheds)
    loaded = build(name, smoke_hparams(name), SHAPE)
    loaded.load_state_dict(model.state_dict())
    for (path, m), (_, l) in zip(model.named_modules(), loaded.named_modules()):
        host = m.__dict__.get("_host", {})
        assert l.__dict__.get("_host", {}) == host, f"{name}.{path}: mirrors not restored on load"
        for key, value in host.items():
            assert getattr(m, key).item() == value, f"{name}.{path}.{key}: buffer and mirror disagree"


def test_the_noise_schedule_is_copied_to_a_device_once():
    """gather's tables live on the device after the first step (a copy from pageable host memory per step would
    make the host wait for the GPU); on the CPU the tables themselves."""
    s = NoiseSchedule(make_betas("linear", 10))
    meta = torch.device("meta")
    first = s.on_device(s.alphas_cumprod, meta)
    assert first.device == meta and s.on_device(s.alphas_cumprod, meta) is first
    assert s.on_device(s.alphas_cumprod, CPU) is s.alphas_cumprod
    t = torch.tensor([0, 3, 9])
    assert torch.equal(s.gather(s.log_betas, t, torch.zeros(3, 1, 2, 2)), s.betas.log()[t].float().view(-1, 1, 1, 1))


# --------------------------------------------------------------------------- (c) divergence between read points

class BlowsUpAt(GenerativeModel):
    """A one-parameter model whose loss turns NaN at its k-th step; `raises_after`: a step that far past k
    raises (as a step on NaN weights may), instead of returning."""

    likelihood = "none"

    def __init__(self, k: int, raises_after: int = 0):
        super().__init__(SimpleNamespace(lr=0.1), SHAPE)
        self.w = nn.Parameter(torch.zeros(()))
        self.k, self.raises_after, self.calls = k, raises_after, 0

    def loss(self, x, y=None):
        self.calls += 1
        if self.raises_after and self.calls == self.k + self.raises_after:
            raise RuntimeError("linalg: the input is not invertible")
        loss = (self.w - x.mean()) ** 2
        return {"loss": loss + float("nan") if self.calls >= self.k else loss}

    @torch.no_grad()
    def sample(self, n, generator=None):
        return torch.full((n, *SHAPE), 0.5)


def _saved_states(monkeypatch):
    saved = []
    real = Trainer._save_checkpoint

    def save(self, model, opts, scheds, st, window=None):
        saved.append((st["step"], st["status"]))
        return real(self, model, opts, scheds, st, window)

    monkeypatch.setattr(Trainer, "_save_checkpoint", save)
    return saved


@pytest.mark.parametrize("raises_after", [0, 2], ids=["keeps-stepping", "a-later-step-raises"])
def test_a_divergence_between_read_points_is_reported_at_its_step(raises_after, small_train, tmp_path, monkeypatch):
    """NaN from step 7; read points at 5 (log), 8 (checkpoint) and 10 (log): the run is recorded as diverged at
    step 7, the log ends at step 5, and no checkpoint after step 5 is saved as healthy. A step that raises on the
    diverged weights (step 9) is reported as the divergence too."""
    saved = _saved_states(monkeypatch)
    cfg = replace(BASE, max_steps=30, checkpoint_every=8)
    st = Trainer(cfg, tmp_path, 0, CPU, rid="x").fit(BlowsUpAt(7, raises_after), Batches(small_train, 32, 0, CPU))
    assert (st["status"], st["diverged_at"], st["step"]) == ("diverged", 7, 7), st
    assert st["divergence"] == "loss nan at step 7"
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5]
    assert saved == [(7, "diverged")], f"checkpoints saved (step, status): {saved}"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["status"] == "diverged"


def test_retries_record_the_same_divergence_steps_whatever_the_read_points(small_train, tmp_path):
    attempts = []
    for every in (1, 5):
        cfg = replace(BASE, max_steps=30, log_every=every, on_divergence="retry", divergence_retries=2)
        st = Trainer(cfg, tmp_path / str(every), 0, CPU, rid="x").fit(BlowsUpAt(7), Batches(small_train, 32, 0, CPU))
        attempts.append([(a["diverged_at"], a["divergence"]) for a in st["attempts"]])
    assert attempts[0] == attempts[1] and attempts[0][0] == (7, "loss nan at step 7"), attempts


# --------------------------------------------------------------------------- (d) checkpoints by wall time

class Killed(Exception):
    pass


def _vae(seed=0):
    seed_everything(seed)
    return build("vae", smoke_hparams("vae"), SHAPE)


def _log_values(out):
    return [{k: v for k, v in json.loads(line).items() if k != "wall"}
            for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_checkpoints_by_wall_time_change_no_result(small_train, tmp_path, monkeypatch):
    """A clock that advances one minute per step and checkpoint_minutes 3: a checkpoint every 3 steps (inside log
    windows of 4), none with checkpoint_minutes 0; the weights and the log are the same either way, and a run
    killed at step 8 resumes from the wall-time checkpoint at step 6 to the same end."""
    minutes = [0]
    monkeypatch.setattr(Trainer, "_clock", staticmethod(lambda: 60.0 * minutes[0]))

    def fit(out, model, every, kill_at=0):
        real_step = model.train_step

        def train_step(*args, **kwargs):
            minutes[0] += 1
            if kill_at and minutes[0] == kill_at:
                raise Killed(f"killed at step {kill_at}")
            return real_step(*args, **kwargs)

        model.train_step, minutes[0] = train_step, 0
        cfg = replace(BASE, max_steps=10, log_every=4, checkpoint_minutes=every)
        trainer = Trainer(cfg, out, 0, CPU, rid="r")
        try:
            trainer.fit(model, Batches(small_train, cfg.batch_size, 0, CPU))
        finally:
            trainer._logf.close()

    saved = _saved_states(monkeypatch)
    timed = _vae()  # each built just before its run: the run goes on from the seeded random state
    fit(tmp_path / "timed", timed, 3)
    assert saved == [(3, "running"), (6, "running"), (9, "running"), (10, "ok")], saved
    saved.clear()
    untimed = _vae()
    fit(tmp_path / "untimed", untimed, 0)
    assert saved == [(10, "ok")], saved
    assert all(torch.equal(a, b) for a, b in zip(timed.state_dict().values(), untimed.state_dict().values()))
    assert _log_values(tmp_path / "timed") == _log_values(tmp_path / "untimed")

    with pytest.raises(Killed):
        fit(tmp_path / "killed", _vae(), 3, kill_at=8)
    resumed = _vae(seed=5)
    fit(tmp_path / "killed", resumed, 3)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), untimed.state_dict().values()))
    assert _log_values(tmp_path / "killed") == _log_values(tmp_path / "untimed"), \
        "the window of steps 5-8 lost step 5-6"


def test_checkpoint_minutes_leaves_the_run_id_alone():
    """It changes when a run checkpoints, never what it computes: a checkpoint resumes under another value, and run
    ids are what they were before the setting existed."""
    train = {k: v for k, v in TrainConfig().__dict__.items()}
    spec = {"model": "vae", "seed": 0, "train": train}
    before = {**spec, "train": {k: v for k, v in train.items() if k != "checkpoint_minutes"}}
    assert run_id(spec) == run_id({**spec, "train": {**train, "checkpoint_minutes": 0}}) == run_id(before)
    assert run_id(spec) != run_id({**spec, "train": {**train, "checkpoint_every": 7}})


# --------------------------------------------------------------------------- CUDA backend flags

def test_cuda_speed_flags_only_while_training_on_cuda_without_determinism():
    flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with cuda_speed_flags(CPU) as on:
        assert on == {} and (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == flags[:2]
    was = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        with cuda_speed_flags(torch.device("cuda")) as on:
            assert on == {"cudnn_benchmark": True, "tf32_matmul": True, "tf32_conv": True}
        torch.use_deterministic_algorithms(True)
        with cuda_speed_flags(torch.device("cuda")) as on:
            assert on == dict(zip(("cudnn_benchmark", "tf32_matmul", "tf32_conv"), flags)), "deterministic: unchanged"
    finally:
        torch.use_deterministic_algorithms(was)
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32) == flags, "the flags were not restored"


# --------------------------------------------------------------------------- on a GPU: no synchronisation at all

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", GRADIENT_TRAINED)
def test_train_step_never_synchronises_on_cuda(name, small_train):
    """torch's sync debug mode raises on any synchronising call (a read to the host, a boolean mask, a blocking
    copy), in torch's code as well as ours. CycleGAN splits each batch into its two domains by label, a
    data-dependent shape that needs the labels on the host."""
    if name == "cyclegan":
        pytest.xfail("CycleGAN's domain masks (x[y == a]) need the labels on the host")
    dev = torch.device("cuda")
    seed_everything(0)
    model = build(name, smoke_hparams(name), SHAPE).to(dev)
    opts = model.configure_optimizers()
    scheds = model.lr_schedulers(opts, 8)
    x, y = next(Batches(small_train, 16, 0, dev).epoch(0))
    _steps(model, (x, y), 1, opts, scheds)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _steps(model, (x, y), 4, opts, scheds)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_a_copy_of_a_model_keeps_its_own_counters():
    """deepcopy (the speed measurement trains copies) copies the Python counters with the buffers."""
    model = build("wgan", smoke_hparams("wgan"), SHAPE)
    clone = copy.deepcopy(model)
    model._host["step"] = 3
    assert mirrored(clone, "step") == 0
