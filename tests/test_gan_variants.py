"""The GAN variants (WGAN, WGAN-GP, projection cGAN) and DCGAN's detach ablation: each paper's
defining rule checked directly (clipping, n_critic, the penalty, spectral norm, projection), the
training contract the trainer relies on (same keys every step, a resumable step counter), and a
few steps on real Fashion-MNIST images."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from genreview.data import Batches
from genreview.models.dcgan import DCGAN, DCGANConfig
from genreview.models import CGANConfig, ProjectionCGAN, WGAN, WGANConfig, WGANGP, WGANGPConfig
from genreview.models.wgan_gp import gradient_penalty

from conftest import CPU, SHAPE

TINY = {"z_dim": 16, "width_g": 8, "width_d": 8}
VARIANTS = {"wgan": (WGAN, WGANConfig), "wgan_gp": (WGANGP, WGANGPConfig), "cgan": (ProjectionCGAN, CGANConfig)}


def _build(name, seed=0, **hp):
    torch.manual_seed(seed)
    cls, cfg_cls = {"dcgan": (DCGAN, DCGANConfig), **VARIANTS}[name]
    return cls(cfg_cls(**{**TINY, **hp}), SHAPE)


def _batches(n_batches, batch=16, seed=0):
    """n_batches of random images in [0, 1] with labels: for the tests that need no real data."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, *SHAPE, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(n_batches)]


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------- the papers' rules

def test_wgan_weights_stay_clipped():
    model = _build("wgan")
    c = model.cfg.clip
    assert c == 0.01
    assert all(p.abs().max() <= c for p in model.D.parameters()), "the critic starts outside [-c, c]"
    opts = model.configure_optimizers()
    for x, y in _batches(6):
        model.train_step(x, y, opts)
        worst = max(float(p.detach().abs().max()) for p in model.D.parameters())
        assert worst <= c, f"a critic weight reached {worst:.4g} after a step, outside [-{c}, {c}]"
    # clipping binds: RMSprop's first steps move weights by about lr, so many sit on the boundary
    assert any(bool((p.abs() == c).any()) for p in model.D.parameters())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_generator_steps_every_n_critic_calls(name):
    model = _build(name)
    n = model.cfg.n_critic
    assert n == {"wgan": 5, "wgan_gp": 5, "cgan": 2}[name]
    opts = model.configure_optimizers()
    g_moved, d_moved = [], []
    for x, y in _batches(2 * n + 1):
        g0, d0, e0 = _params(model.G), _params(model.D), _params(model.G_ema.net)
        model.train_step(x, y, opts)
        g_moved.append(not _same(g0, _params(model.G)))
        d_moved.append(not _same(d0, _params(model.D)))
        assert g_moved[-1] == (not _same(e0, _params(model.G_ema.net))), "the EMA must follow G's steps"
    expected = [(i + 1) % n == 0 for i in range(2 * n + 1)]
    assert g_moved == expected, f"G changed at calls {g_moved}, expected only every {n}th call: {expected}"
    assert all(d_moved), "the critic must step on every call"
    assert int(model.step) == 2 * n + 1


def test_optimisers_follow_the_papers():
    wgan = _build("wgan").configure_optimizers()
    for k in ("d", "g"):
        assert isinstance(wgan[k], torch.optim.RMSprop) and wgan[k].defaults["lr"] == 5e-5, \
            "WGAN: RMSprop with lr 5e-5 for both players (Arjovsky et al. 2017)"
    gp_model = _build("wgan_gp")
    gp = gp_model.configure_optimizers()
    assert gp_model.cfg.gp_weight == 10 and gp_model.cfg.n_critic == 5
    for k in ("d", "g"):
        assert isinstance(gp[k], torch.optim.Adam) and gp[k].defaults["lr"] == 1e-4
        assert gp[k].defaults["betas"] == (0.0, 0.9), "WGAN-GP: Adam(1e-4, betas (0, 0.9)) (Gulrajani et al. 2017)"
    cg = _build("cgan").configure_optimizers()
    assert cg["d"].defaults["betas"] == (0.0, 0.999) and cg["g"].defaults["betas"] == (0.0, 0.999)
    assert (cg["g"].defaults["lr"], cg["d"].defaults["lr"]) == (1e-4, 4e-4), "BigGAN's baseline rates"


def test_wgan_gp_critic_has_no_batch_norm():
    model = _build("wgan_gp")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.D.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.D.modules())
    with pytest.raises(ValueError, match="per sample"):
        _build("wgan_gp", critic_norm="batch")


def test_gradient_penalty_by_hand():
    real = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])   # (2, 1, 2, 2)
    fake = torch.tensor([[[[-1.0, 0.0], [2.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    eps = torch.tensor([0.25, 0.5]).view(2, 1, 1, 1)
    # f(x) = ||x||^2 / 2 has gradient x: the penalty is the mean of (||x_hat|| - 1)^2
    x_hat = eps * real + (1 - eps) * fake
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    got = gradient_penalty(lambda x: 0.5 * x.flatten(1).pow(2).sum(1), real, fake, eps)
    assert torch.allclose(got, expected), f"penalty {got} != hand computation {expected}"
    # x_hat[0] = (-0.5, 0.5, 1.5, 0.5): norm sqrt(3); x_hat[1] = 0.25 everywhere: norm 0.5
    assert torch.allclose(expected, torch.tensor(((3 ** 0.5 - 1) ** 2 + 0.25) / 2))

    # a linear critic with a unit-norm weight is 1-Lipschitz with gradient norm 1 everywhere: no penalty
    lin = nn.Linear(4, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 2.0, 4.0]]) / 5)
    critic = lambda x: lin(x.flatten(1)).squeeze(1)  # noqa: E731
    assert float(gradient_penalty(critic, real, fake, eps).detach()) < 1e-12
    # ... and with ||w|| = 3 the penalty is (3 - 1)^2, whose gradient in w is 2 (||w|| - 1) w / ||w||
    with torch.no_grad():
        lin.weight.mul_(3)
    gp = gradient_penalty(critic, real, fake, eps)
    assert torch.allclose(gp, torch.tensor(4.0))
    gp.backward()
    w = lin.weight.detach()
    assert torch.allclose(lin.weight.grad, 2 * (w.norm() - 1) * w / w.norm(), atol=1e-6), \
        "the penalty must be differentiable in the critic's parameters"


def test_wgan_gp_reports_its_penalty():
    model = _build("wgan_gp")
    opts = model.configure_optimizers()
    x, y = _batches(1)[0]
    out = model.train_step(x, y, opts)
    assert float(out["gp"]) > 0
    assert torch.allclose(out["d_loss"], -out["wasserstein"] + 10 * out["gp"], atol=1e-5)


def test_spectral_norm_keeps_top_singular_value_at_one():
    model = _build("cgan")
    layers = [m for m in model.D.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert len(layers) == 5, "every conv, the head and the class embedding are normalised"
    x, y = torch.rand(16, *SHAPE) * 2 - 1, torch.randint(0, 10, (16,))
    for _ in range(20):  # one power iteration per forward pass in training mode (15 at registration)
        model.D(x, y)
    for m in layers:
        assert nn.utils.parametrize.is_parametrized(m, "weight")
        sigma = float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
        raw = float(torch.linalg.matrix_norm(m.parametrizations.weight.original.detach().flatten(1), ord=2))
        # power iteration approaches the top singular value from below, slowly where the top two are
        # close, so the normalised value approaches 1 from above (1.012 at worst in 3 seeds here)
        assert 0.999 < sigma < 1.03, f"{type(m).__name__}: top singular value {sigma:.4f} after spectral norm"
        assert abs(raw - 1) > 0.05, "the test needs weights whose own top singular value is not 1"


def test_projection_discriminator_depends_on_the_class():
    model = _build("cgan")
    D = model.D.eval()
    x = torch.rand(8, *SHAPE) * 2 - 1
    y1, y2 = torch.zeros(8, dtype=torch.long), torch.full((8,), 3)
    with torch.no_grad():
        d1, d2, phi = D(x, y1), D(x, y2), D.features(x)
        projection = ((D.embed(y1) - D.embed(y2)) * phi).sum(1)
    assert (d1 - d2).abs().min() > 1e-4, "D(x, y) does not change with y"
    assert torch.allclose(d1 - d2, projection, atol=1e-5), "the class enters only through <embed(y), phi(x)>"


def test_conditional_sampling_labels():
    model = _build("cgan").eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    n, k = 25, model.cfg.num_classes
    balanced = model.sample(n, generator=g())
    assert balanced.shape == (n, *SHAPE) and balanced.min() >= 0 and balanced.max() <= 1
    assert torch.equal(balanced, model.sample(n, generator=g(), labels=torch.arange(n) % k)), \
        "labels=None must mean the balanced labels arange(n) % num_classes"
    fives = model.sample(n, generator=g(), labels=5)
    assert torch.equal(fives, model.sample(n, generator=g(), labels=torch.full((n,), 5)))
    assert not torch.equal(fives, model.sample(n, generator=g(), labels=6)), "the labels are ignored"
    z, y = torch.randn(4, model.cfg.z_dim), torch.tensor([1, 7, 7, 2])
    with torch.no_grad():
        direct = (model.sampling_network()(z, y) + 1) / 2
    assert torch.allclose(model.generate(z, y), direct), "generate must feed the given labels to the EMA generator"
    assert model.generate(z).shape == (4, *SHAPE), "evaluate.extras calls generate(z) without labels"


# --------------------------------------------------------------------------- the detach ablation

@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_detach_ablation(name):
    """Without the detach, D's backward also reaches G, but D's step (and then G's) is the same."""
    extra = {"n_critic": 1} if name == "cgan" else {}
    runs = {}
    for detach in (True, False):
        model = _build(name, detach_fake=detach, **extra)
        opts = model.configure_optimizers()
        torch.manual_seed(1)
        outs = [model.train_step(x, y, opts) for x, y in _batches(2)]
        runs[detach] = (outs, _params(model.D), _params(model.G))
    assert all(float(o["g_grad_in_d_step"]) == 0.0 for o in runs[True][0])
    assert all(float(o["g_grad_in_d_step"]) > 0.0 for o in runs[False][0]), \
        "without the detach, D's backward must leave gradients on G"
    for k in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert torch.allclose(runs[True][0][-1][k], runs[False][0][-1][k], rtol=0, atol=1e-6), k
    for which, a, b in (("D", runs[True][1], runs[False][1]), ("G", runs[True][2], runs[False][2])):
        assert all(torch.allclose(p, q, rtol=0, atol=1e-7) for p, q in zip(a, b)), \
            f"{which}'s parameters differ between detach_fake=True and False"


def test_without_zeroing_g_steps_on_its_own_gradient_plus_ds():
    """The loop where the detach matters: G's gradients not cleared before its step. Without the detach G's
    update is then the sum of its own gradient and the one D's step left (checked against a model that takes
    the two gradients one at a time), and `g_update_cos` is their cosine as the step reports it; with the
    detach nothing leaks in and the updates are the usual ones."""
    (x, y), = _batches(1)
    base = _build("dcgan", detach_fake=False)
    state = {k: v.clone() for k, v in base.state_dict().items()}

    def one_step(**cfg):
        model = _build("dcgan", **cfg)
        model.load_state_dict(state)
        opts = model.configure_optimizers()
        torch.manual_seed(1)
        return model, model.train_step(x, y, opts), opts

    leaky, out, _ = one_step(detach_fake=False, zero_g_grad=False)
    clean, out_clean, _ = one_step(detach_fake=False)
    same, out_same, _ = one_step(detach_fake=True, zero_g_grad=False)
    assert "g_update_cos" not in out_clean and float(out_same["g_update_cos"]) == pytest.approx(1.0, abs=1e-6)
    assert all(torch.equal(p, q) for p, q in zip(_params(same.G), _params(clean.G)))
    # by hand: the fakes' gradient through D's loss, plus G's own, at the initial weights and the same noise
    ref = _build("dcgan", detach_fake=False)
    ref.load_state_dict(state)
    opts = ref.configure_optimizers()
    torch.manual_seed(1)
    fake, _ = ref.critic_step(x * 2 - 1, y, opts, generator_turn=True)
    left = [p.grad.clone() for p in ref.G.parameters()]
    opts["g"].zero_grad(set_to_none=True)
    ref.generator_loss(fake, y).backward()
    own = [p.grad.clone() for p in ref.G.parameters()]
    total = [a + b for a, b in zip(left, own)]
    cos = sum((t * o).sum() for t, o in zip(total, own)) / torch.sqrt(
        sum(t.pow(2).sum() for t in total) * sum(o.pow(2).sum() for o in own))
    assert float(out["g_update_cos"]) == pytest.approx(float(cos), rel=1e-4) and float(cos) < 0.999
    assert not all(torch.allclose(p, q) for p, q in zip(_params(leaky.G), _params(clean.G))), \
        "kept, D's gradient changes G's update"


def test_dcgan_default_is_detached():
    assert DCGANConfig().detach_fake is True


# --------------------------------------------------------------------------- the trainer's contract

@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_same_keys_every_step_and_a_resumable_counter(name):
    model = _build(name)
    opts = model.configure_optimizers()
    n = model.cfg.n_critic
    batches = _batches(n + 2)
    keys = None
    for i, (x, y) in enumerate(batches[:n + 1]):
        out = model.train_step(x, y, opts)
        assert keys is None or list(out) == keys, f"call {i + 1} returned {list(out)}, earlier {keys}"
        keys = list(out)
        assert all(torch.isfinite(v).all() for v in out.values())
        assert all(v.dim() == 0 and not v.requires_grad for v in out.values())
        if i < n - 1:
            assert float(out["g_loss"]) == 0.0, "before G's first step there is no generator loss to report"
    assert {"loss", "d_loss", "g_loss", "d_real", "d_fake", "g_grad_in_d_step"} <= set(keys)
    assert ("wasserstein" in keys) == (name != "cgan") and ("gp" in keys) == (name == "wgan_gp")

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = _build(name, seed=1)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert int(fresh.step) == n + 1 and float(fresh.last_g_loss) == float(model.last_g_loss) != 0
    assert _same(_params(fresh.D), _params(model.D)) and _same(_params(fresh.G_ema.net), _params(model.G_ema.net))


# --------------------------------------------------------------------------- a few real steps

@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_critic_learns_to_separate(name, small_train):
    """In 30 critic steps on real Fashion-MNIST, the critic learns to score real images above fakes."""
    model = _build(name)
    opts = model.configure_optimizers()
    rows = []
    for x, y in Batches(small_train, 32, 0, CPU).epoch(0):
        rows.append({k: float(v) for k, v in model.train_step(x, y, opts).items()})
        if len(rows) == 30:
            break
    first, last = (sum(r["d_real"] - r["d_fake"] for r in rows[sl]) / 5 for sl in (slice(0, 5), slice(-5, None)))
    assert last > 0 and last > first, \
        f"{name}: the critic does not learn to score real above fake: gap {first:.4g} -> {last:.4g} in 30 steps"
    model.eval()
    s = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert s.shape == (8, *SHAPE) and torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1
