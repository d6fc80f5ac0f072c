"""Training FLOPs (genreview.training.flops) and their place in train_summary.json and the throughput benchmark:
a hand-counted oracle, a count that leaves the real run untouched, whole cycles (WGAN's critic steps, StyleGAN's
lazy R1) and phases (the LDM), and the benchmark's TFLOP/s, peak share and wall-time estimate."""
from __future__ import annotations

import json
import random
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import genreview.training.train as T
from genreview import config as C
from genreview.models import build
from genreview.models.base import GenerativeModel
from genreview.training import flops as F
from genreview.training.config import TrainConfig

from conftest import CPU, SHAPE, smoke_config, smoke_hparams

A, H, B_OUT, N = 28 * 28, 16, 8, 4  # the oracle's layer sizes and batch


class TwoLinear(GenerativeModel):
    """loss = mean(l2(relu(l1(x)))^2); samples are sigmoid(dec(z)), z (n, H)."""

    def __init__(self):
        super().__init__(SimpleNamespace(lr=1e-3), SHAPE)
        self.l1, self.l2, self.dec = nn.Linear(A, H), nn.Linear(H, B_OUT), nn.Linear(H, A)

    def loss(self, x, y=None):
        return {"loss": self.l2(torch.relu(self.l1(x.flatten(1)))).pow(2).mean()}

    @torch.no_grad()
    def sample(self, n, generator=None):
        return torch.sigmoid(self.dec(torch.randn(n, H, generator=generator))).view(n, *SHAPE)


def _batch(n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g), torch.arange(n) % 10


def test_a_training_step_counts_as_the_hand_formula():
    """2 FLOPs per multiply-add. Forward: 2B(AH + HO). Backward: l2's weight and input gradients 2BHO each, l1's
    weight gradient 2BAH (the images need no gradient)."""
    r = F.train_flops(TwoLinear(), _batch(), steps=10)
    per_step = 2 * N * (A * H + H * B_OUT) + 2 * 2 * N * H * B_OUT + 2 * N * A * H
    assert r["per_step"] == per_step and r["phases"]["train"]["step_flops"] == [per_step]
    assert r["train_flops"] == 10 * per_step and r["counter"] == "torch.utils.flop_counter"
    assert r["generator_updates"] is None and r["per_generator_update"] is None, "no generator optimiser"


def test_sampling_counts_as_the_hand_formula():
    m = TwoLinear()
    assert F.sample_flops(m, 5) == 2 * 5 * H * A
    assert m.training, "the model's mode is restored"


def test_the_count_leaves_the_model_and_the_random_state_untouched():
    torch.manual_seed(0)
    model = build("wgan", smoke_hparams("wgan"), SHAPE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    F.train_flops(model, _batch(8), total_steps=10)
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == [], "the count changed the real model"
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2]), "the count moved torch's random numbers"


def test_a_critic_gan_is_counted_over_n_critic_steps_one_of_which_updates_g():
    model = build("wgan", {**smoke_hparams("wgan"), "n_critic": 5}, SHAPE)
    r = F.train_flops(model, _batch(8), total_steps=100, steps=12)
    flops = r["phases"]["train"]["step_flops"]
    assert r["cycle_steps"] == 5 and len(flops) == 5
    assert r["phases"]["train"]["optimizer_steps"] == {"d": 5, "g": 1}
    critic = min(flops)
    assert sorted(flops)[:4] == [critic] * 4 and max(flops) > critic, "four critic steps and one with G's step"
    assert r["per_step"] == sum(flops) / 5 != critic
    assert r["generator_updates"] == 12 // 5
    assert r["per_generator_update"] == pytest.approx(5 * r["per_step"])
    assert r["train_flops"] == pytest.approx(12 * r["per_step"])


def test_a_gradient_penalty_is_counted():
    """WGAN-GP's penalty differentiates through torch.autograd.grad (which FlopCounterMode's module tracker
    cannot follow): its critic steps count more than WGAN's on the same networks."""
    hp = {**smoke_hparams("wgan_gp"), "n_critic": 2}
    gp = F.train_flops(build("wgan_gp", hp, SHAPE), _batch(8), total_steps=10)
    plain = F.train_flops(build("wgan", {**smoke_hparams("wgan"), "n_critic": 2}, SHAPE), _batch(8), total_steps=10)
    assert min(gp["phases"]["train"]["step_flops"]) > min(plain["phases"]["train"]["step_flops"])


def test_stylegan_is_counted_over_its_lazy_r1_interval():
    hp = {**smoke_hparams("stylegan"), "r1_every": 4, "mixing_prob": 0.0}
    r = F.train_flops(build("stylegan", hp, SHAPE), _batch(4), total_steps=10)
    flops = r["phases"]["train"]["step_flops"]
    assert r["cycle_steps"] == 4 and len(set(flops)) == 2 and flops.count(max(flops)) == 1, flops
    assert r["phases"]["train"]["optimizer_steps"] == {"d": 4, "g": 4} and r["per_generator_update"] == r["per_step"]


def test_the_ldm_is_counted_in_each_phase_weighted_by_its_share():
    model = build("ldm", {**smoke_hparams("ldm"), "ae_fraction": 0.25}, SHAPE)
    with pytest.raises(ValueError, match="total_steps"):
        F.train_flops(model, _batch())
    r = F.train_flops(model, _batch(), total_steps=100, steps=100)
    ae, den = (r["phases"][p]["per_step"] for p in ("autoencoder", "denoiser"))
    assert ae != den and (r["phases"]["autoencoder"]["share"], r["phases"]["denoiser"]["share"]) == (0.25, 0.75)
    assert r["per_step"] == pytest.approx(0.25 * ae + 0.75 * den)
    assert r["train_flops"] == pytest.approx(25 * ae + 75 * den)
    early = F.train_flops(model, _batch(), total_steps=100, steps=10)  # a run that stopped in its first phase
    assert early["train_flops"] == pytest.approx(10 * ae)


def _spec(root, model, max_steps):
    train = asdict(TrainConfig(epochs=1, max_steps=max_steps, batch_size=16, sample_epochs=[], sample_grid=4,
                               log_every=2, precision="fp32", memory_format="contiguous"))
    return {"dataset": "fashion_mnist", "data_root": str(root), "device": "cpu", "model": model, "seed": 0,
            "hparams": smoke_hparams(model), "train": train}


def test_train_records_the_runs_flops_without_changing_the_run(fmnist_root, tmp_path, monkeypatch):
    spec = _spec(fmnist_root, "wgan", 7)
    summary = T.train(spec, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert saved == summary
    assert saved["flops_counter"] == "torch.utils.flop_counter" and saved["flops_per_step"] > 0
    assert saved["train_flops"] == pytest.approx(7 * saved["flops_per_step"])
    assert saved["generator_updates"] == 7 // 5 and saved["flops"]["cycle_steps"] == 5
    monkeypatch.setattr(T, "run_flops", lambda *a: {})  # the same run without the count
    T.train(spec, tmp_path / "uncounted")
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=False)["state_dict"] for d in ("run", "uncounted"))
    assert all(torch.equal(a[k], b[k]) for k in a), "counting the FLOPs changed the trained weights"


def test_a_classical_model_records_no_flops(fmnist_root, tmp_path):
    saved = T.train(_spec(fmnist_root, "gmm", 7), tmp_path / "run")
    assert saved["flops_per_step"] is None and saved["train_flops"] is None and saved["flops_counter"] is None
    assert "EM" in saved["flops"]["note"]


# --------------------------------------------------------------------------- the throughput benchmark

def test_throughput_reports_flops_per_phase_over_whole_cycles(small_train, tmp_path):
    from genreview.bench.throughput import measure
    spec = C.train_spec(smoke_config(), "ldm", 0, snapshots=False)
    spec["train"]["batch_size"] = 16
    r = measure("ldm", spec, small_train, CPU, steps=1, warmup=0, out=tmp_path)
    assert r["planned_steps"] == min(len(small_train) // 16, spec["train"]["max_steps"])
    assert set(r["phases"]) == {"autoencoder", "denoiser"} and r["timed_steps"] == 2
    assert r["ms_per_step"] == pytest.approx(sum(p["share"] * p["ms_per_step"] for p in r["phases"].values()))
    assert r["tflops_per_s"] == pytest.approx(r["flops_per_step"] / (r["ms_per_step"] / 1e3) / 1e12)
    assert r["peak_share"] is None and "CPU" in r["peak_note"]
    spec = C.train_spec(smoke_config(), "wgan", 0, snapshots=False)
    spec["train"]["batch_size"] = 16
    assert measure("wgan", spec, small_train, CPU, steps=2, warmup=0, out=tmp_path)["timed_steps"] == 5


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA L40S", 362.0), ("NVIDIA GeForce RTX 4090", 165.0),
                                        ("Tesla T4", None)])
def test_the_bf16_peak_is_looked_up_by_device_name(name, peak, monkeypatch):
    from genreview.bench import throughput
    monkeypatch.setattr(throughput, "device_name", lambda device: name)
    assert throughput.bf16_peak_tflops(torch.device("cuda")) == peak
    assert throughput.bf16_peak_tflops(CPU) is None


def test_the_estimate_is_planned_steps_times_seconds_per_step_times_seeds():
    """...and the KL-weight runs of the dynamics study, which train as long as the main runs."""
    from genreview.bench.throughput import estimate
    cfg = {"profile": "full", "models": ["gmm", "vae", "ddpm", "ldm"], "seeds": [0],
           "seeds_by_model": {"vae": [0, 1, 2]}, "dynamics": {"models": ["ddpm"]}}
    measured = {"gmm": {"skipped": "fitted by EM, not by training steps"},
                "vae": {"planned_steps": 1000, "ms_per_step": 10.0, "flops_per_step": 1e9},
                "ddpm": {"planned_steps": 2000, "ms_per_step": 50.0, "flops_per_step": 1e10}}
    est = estimate(cfg, measured)
    assert est["models"]["vae"]["seconds"] == pytest.approx(1000 * 0.01 * 3)
    assert est["seconds"] == pytest.approx(30 + 100) and est["hours"] == pytest.approx(130 / 3600)
    assert est["train_flops"] == pytest.approx(3 * 1000 * 1e9 + 2000 * 1e10)
    assert est["not_covered"] == {"gmm": "fitted by EM, not by training steps", "ldm": "not measured"}
    assert "training steps" in est["covers"] and est["profile"] == "full"
    cfg["dynamics"] = {"models": ["vae", "ddpm"], "seeds": [0, 1, 2], "betas": [0.25, 4.0]}
    vae = estimate(cfg, measured)["models"]["vae"]
    assert vae["kl_weight_runs"] == 6 and vae["seconds"] == pytest.approx(1000 * 0.01 * (3 + 6))
    cfg["dynamics"]["beta_steps"] = 300    # short KL-weight runs: not main-run training
    assert estimate(cfg, measured)["models"]["vae"]["kl_weight_runs"] == 0
