"""The diffusion machinery: the forward process in closed form, and our DDPM/DDIM scheduler
steps against diffusers' reference implementations on the same inputs."""
from __future__ import annotations

import math

import pytest
import torch

from genreview.diffusion.schedule import NoiseSchedule, make_betas
from genreview.diffusion.scheduling_ddim import DDIMScheduler
from genreview.diffusion.scheduling_ddpm import DDPMScheduler

T = 1000


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(make_betas("linear", T, 1e-4, 0.02))


def _inputs(schedule, t: int, seed: int, shape=(4, 1, 8, 8)):
    """x_t drawn from the forward process and a noisy eps prediction, so that the predicted x_0
    leaves [-1, 1] for some pixels (the clipping paths run) but not for all."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g) * 2 - 1
    eps = torch.randn(shape, generator=g)
    x_t = schedule.add_noise(x0, eps, torch.full((shape[0],), t))
    eps_hat = eps + 0.3 * torch.randn(shape, generator=g)
    return x_t.float(), eps_hat.float()


# --------------------------------------------------------------------------- forward process

def test_add_noise_matches_closed_form(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 250, 500, 999])
    betas = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    got = schedule.add_noise(x0, noise, t)
    for i, ti in enumerate(t.tolist()):
        abar = math.prod(1 - b for b in betas[: ti + 1])  # abar_t = prod_{s<=t} (1 - beta_s), 0-indexed
        want = math.sqrt(abar) * x0[i] + math.sqrt(1 - abar) * noise[i]
        torch.testing.assert_close(got[i], want, rtol=1e-9, atol=1e-12, msg=f"q_sample wrong at t={ti}")
    # The inverse the samplers use recovers x_0 exactly from the true noise.
    torch.testing.assert_close(schedule.predict_start_from_noise(got, t, noise), x0, rtol=1e-9, atol=1e-9)
    # The schedule's ends: almost no noise at t=0, almost pure noise at t=T-1.
    assert schedule.alphas_cumprod[0] > 0.9998 and schedule.alphas_cumprod[-1] < 1e-4


def test_cosine_schedule_matches_its_definition():
    s, steps = 0.008, 100
    abar = NoiseSchedule(make_betas("cosine", steps)).alphas_cumprod
    f = [math.cos((i / steps + s) / (1 + s) * math.pi / 2) ** 2 for i in range(steps + 1)]
    want = torch.tensor([f[i + 1] / f[0] for i in range(steps)], dtype=torch.float64)
    # beta is clipped at 0.999 near t = T, so compare where the clip is inactive.
    torch.testing.assert_close(abar[:-1], want[:-1], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        make_betas("quadratic", 10)


# --------------------------------------------------------------------------- DDIM determinism

def test_ddim_eta0_is_deterministic(schedule):
    sched = DDIMScheduler(schedule, eta=0.0, spacing="trailing")
    sched.set_timesteps(10)
    x_t, eps = _inputs(schedule, int(sched.timesteps[2]), seed=3)
    a = sched.step(eps, sched.timesteps[2], x_t, torch.Generator().manual_seed(1))
    b = sched.step(eps, sched.timesteps[2], x_t, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "DDIM eta=0 depends on the generator"
    # With eta > 0 the step is stochastic: the check above could fail.
    noisy = DDIMScheduler(schedule, eta=1.0, spacing="trailing")
    noisy.set_timesteps(10)
    c = noisy.step(eps, noisy.timesteps[2], x_t, torch.Generator().manual_seed(1))
    d = noisy.step(eps, noisy.timesteps[2], x_t, torch.Generator().manual_seed(2))
    assert not torch.equal(c[0], d[0])


def test_ddim_eta0_sampling_is_deterministic():
    """A whole DDIM chain from the same x_T gives the same images whatever the global RNG does."""
    from genreview.models import build

    torch.manual_seed(0)
    model = build("ddpm", {"width": 8, "attn_levels": [], "timesteps": 50, "sample_steps": 5,
                           "ddim_eta": 0.0, "sampler": "ddim", "ema_decay": 0.0}, (1, 28, 28)).eval()
    with torch.no_grad():  # a non-zero output layer, so the network's eps matters
        torch.nn.init.normal_(model.unet.out[-1].weight, std=0.05)
    torch.manual_seed(1)
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(2)
    torch.rand(100)
    b = model.sample(3, generator=torch.Generator().manual_seed(5))
    c = model.sample(3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b), "DDIM (eta=0) sampling is not deterministic given x_T"
    assert not torch.equal(a, c), "different x_T gave identical samples"


# --------------------------------------------------------------------------- step counts

@pytest.mark.parametrize("make", [lambda s: DDPMScheduler(s), lambda s: DDIMScheduler(s, spacing="leading"),
                                  lambda s: DDIMScheduler(s, spacing="trailing")], ids=["ddpm", "leading", "trailing"])
def test_any_step_count_visits_distinct_timesteps(schedule, make):
    """A step count k from 1 to T, dividing T or not, gives k distinct, descending timesteps in [0, T-1], each step
    going to the next one in the list (trailing spacing with a step count that does not divide T once gave
    k + 1 timesteps ending at -1, e.g. k = 61: a float arange's length); 0 or more than T is an error."""
    sched = make(schedule)
    for k in (1, 3, 7, 10, 61, 103, 300, 999, T):
        sched.set_timesteps(k)
        ts = sched.timesteps.tolist()
        assert len(ts) == k and ts == sorted(set(ts), reverse=True) and 0 <= ts[-1] and ts[0] <= T - 1, k
        if isinstance(sched, DDIMScheduler):
            assert [sched.prev_timestep[t] for t in ts] == ts[1:] + [-1], k
            assert sched.spacing == "leading" or ts[0] == T - 1
    for k in (0, T + 1):
        with pytest.raises(ValueError, match=f"ask for 1 to {T} steps"):
            sched.set_timesteps(k)


# --------------------------------------------------------------------------- against diffusers

@pytest.mark.parametrize("n", [10, 50])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_timesteps_match_diffusers(schedule, spacing, n):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    ref.set_timesteps(n)
    ours = DDIMScheduler(schedule, spacing=spacing)
    ours.set_timesteps(n)
    assert ours.timesteps.tolist() == ref.timesteps.tolist(), f"DDIM {spacing} timesteps for {n} steps differ"
    assert ours.timesteps[0] == (T - 1 if spacing == "trailing" else (n - 1) * (T // n))


@pytest.mark.parametrize("n", [10, 50, T])
def test_ddpm_timesteps_match_diffusers(schedule, n):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=T)
    ref.set_timesteps(n)
    ours = DDPMScheduler(schedule)
    ours.set_timesteps(n)
    assert ours.timesteps.tolist() == ref.timesteps.tolist(), f"DDPM timesteps for {n} steps differ"


def test_alphas_cumprod_match_diffusers(schedule):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    # diffusers accumulates in float32; ours in float64.
    torch.testing.assert_close(schedule.alphas_cumprod, ref.alphas_cumprod.double(), rtol=2e-6, atol=1e-9)


def _close(ours, ref, what):
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("n", [T, 50])
def test_ddpm_step_matches_diffusers(schedule, n):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                  variance_type="fixed_small", clip_sample=True, prediction_type="epsilon")
    ref.set_timesteps(n)
    ours = DDPMScheduler(schedule, clip_sample=True)
    ours.set_timesteps(n)
    ts = ours.timesteps.tolist()
    clipped = 0
    for i in sorted({0, 1, len(ts) // 3, len(ts) // 2, len(ts) - 2, len(ts) - 1}):
        t = ts[i]
        x_t, eps = _inputs(schedule, t, seed=i)
        prev, x0 = ours.step(eps, t, x_t, torch.Generator().manual_seed(100 + i))
        r = ref.step(eps, t, x_t, generator=torch.Generator().manual_seed(100 + i))
        _close(x0, r.pred_original_sample, f"DDPM ({n} steps) predicted x_0 at t={t}")
        _close(prev, r.prev_sample, f"DDPM ({n} steps) x_prev at t={t}")
        clipped += int((x0.abs() == 1).any())
    assert clipped >= 2, "the inputs never exercised clip_sample"


@pytest.mark.parametrize("eta", [0.0, 0.5])
@pytest.mark.parametrize("n", [10, 50])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_step_matches_diffusers(schedule, spacing, n, eta):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                  clip_sample=True, set_alpha_to_one=True, timestep_spacing=spacing,
                                  prediction_type="epsilon")
    ref.set_timesteps(n)
    ours = DDIMScheduler(schedule, eta=eta, spacing=spacing, clip_sample=True)
    ours.set_timesteps(n)
    ts = ours.timesteps.tolist()
    clipped = 0
    for i in sorted({0, 1, len(ts) // 2, len(ts) - 2, len(ts) - 1}):
        t = ts[i]
        x_t, eps = _inputs(schedule, t, seed=i)
        prev, x0 = ours.step(eps, t, x_t, torch.Generator().manual_seed(100 + i))
        r = ref.step(eps, t, x_t, eta=eta, use_clipped_model_output=True,
                     generator=torch.Generator().manual_seed(100 + i))
        what = f"DDIM ({spacing}, {n} steps, eta={eta}) at t={t}"
        _close(x0, r.pred_original_sample, f"{what}: predicted x_0")
        _close(prev, r.prev_sample, f"{what}: x_prev")
        clipped += int((x0.abs() == 1).any())
    assert clipped >= 2, "the inputs never exercised clip_sample"
