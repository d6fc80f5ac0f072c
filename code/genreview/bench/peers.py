"""Our models against well-known implementations on the same budget: benchmarks, not tests.

    python -m genreview.bench.peers [ddpm] --steps 1000 --out bench/ddpm_vs_diffusers.json
    python -m genreview.bench.peers dcgan --profile small --seconds 120 --out bench/dcgan_vs_pytorch_examples.json

DDPM against diffusers (the default, and `ddpm`); DCGAN against pytorch/examples' DCGAN (`dcgan`: see
`run_dcgan`).

Two DDPMs (Ho et al. 2020) are trained side by side for the same steps on the same batches of
the same data, with the same recipe: Adam at the profile's learning rate, warm-up and cosine
decay, gradient clipping, an EMA of the weights, bf16 autocast and channels_last where they
measure faster (`utils.resolve_precision`). They differ in what the comparison is about:

- ours: `models.ddpm.DDPM` with the profile's hyperparameters (`hparams.ddpm`), our UNet and
  our schedulers;
- diffusers: `UNet2DModel` trained as diffusers' unconditional training example does
  (`DDPMScheduler.add_noise`, MSE on the noise), sampled with diffusers' `DDIMScheduler`; its
  widths are chosen so that its parameter count is the nearest to ours among a few layouts.

Both sample with DDIM at the profile's step count and eta. Reported: parameters, ms per
training step (median and mean; the two models alternate in blocks of `--block` steps, so
that other load on the machine slows both alike), FD in the domain classifier's features
at N = `--n` against the test split (the real-data floor beside it, the same N of training
images), and sampling ms per image at batch `--sample-batch`.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import config as C
from .. import data as D
from ..evaluation.classifier import load_classifier, train_classifier
from ..evaluation.metrics import EvalConfig, features, frechet_distance, gaussian, prdc
from ..hparams import hp
from ..models import build
from ..models.base import EMA, GenerativeModel
from ..models.ddpm import DDPM
from ..paths import Paths
from ..utils import (autocast, count_parameters, device_name, log, pick_device, resolve_precision, save_json,
                     set_threads)

# UNet2DModel layouts tried for the peer, (block_out_channels, attention on the middle level)
PEER_LAYOUTS = [((16, 32, 32), True), ((32, 64, 64), True), ((40, 80, 80), True), ((48, 96, 96), True),
                ((64, 128, 128), True), ((64, 64, 128), True), ((96, 192, 192), True), ((128, 128, 256), True)]


class DiffusersDDPM(GenerativeModel):
    """The peer: diffusers' UNet2DModel, noised by its DDPMScheduler, sampled by its DDIMScheduler.
    Args: cfg (our DDPMConfig: schedule, timesteps, lr, warm-up, clip, EMA, sampler steps and eta),
    shape (C, H, W), channels (block_out_channels), attn (attention at the middle level)."""

    def __init__(self, cfg, shape, channels=(32, 64, 64), attn=True):
        super().__init__(cfg, shape)
        from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
        c, h, _ = shape
        self.unet = UNet2DModel(
            sample_size=h, in_channels=c, out_channels=c, layers_per_block=cfg.res_blocks,
            block_out_channels=tuple(channels), norm_num_groups=8,
            down_block_types=("DownBlock2D", "AttnDownBlock2D" if attn else "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D" if attn else "UpBlock2D", "UpBlock2D"))
        kw = dict(num_train_timesteps=cfg.timesteps, beta_start=cfg.beta_start, beta_end=cfg.beta_end,
                  beta_schedule="linear" if cfg.schedule == "linear" else "squaredcos_cap_v2")
        self.noise_scheduler = DDPMScheduler(**kw)
        self.sampler = DDIMScheduler(**kw, timestep_spacing=cfg.spacing)
        self.ema = EMA(self.unet, cfg.ema_decay)

    def loss(self, x, y=None):
        x0 = x * 2 - 1                                                            # (B, C, H, W) in [-1, 1]
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.cfg.timesteps, (len(x),), device=x.device)
        x_t = self.noise_scheduler.add_noise(x0, noise, t)
        return {"loss": F.mse_loss(self.unet(x_t, t).sample.float(), noise)}

    # The recipe is our DDPM's own: the same optimiser, learning-rate schedule and EMA weights for sampling.
    configure_optimizers = DDPM.configure_optimizers
    lr_schedulers = DDPM.lr_schedulers
    sampling_network = DDPM.sampling_network

    def train_step(self, x, y, optimizers, amp=nullcontext):
        out = super().train_step(x, y, optimizers, amp)                          # clipping at cfg.grad_clip
        self.ema.update(self.unet)
        return out

    @torch.no_grad()
    def sample(self, n, generator=None):
        net = self.sampling_network()
        device = next(net.parameters()).device
        self.sampler.set_timesteps(self.cfg.sample_steps)
        x = torch.randn(n, *self.shape, generator=generator, device=device)      # x_T, (n, C, H, W)
        for t in self.sampler.timesteps:
            eps = net(x, t.to(device)).sample.float()
            x = self.sampler.step(eps, t, x, eta=self.cfg.ddim_eta, generator=generator).prev_sample
        return ((x + 1) / 2).clamp(0, 1)


def build_peer(cfg, shape, target_params: int) -> DiffusersDDPM:
    """The UNet2DModel layout whose parameter count is nearest to `target_params`."""
    best = None
    for channels, attn in PEER_LAYOUTS:
        torch.manual_seed(0)
        m = DiffusersDDPM(cfg, shape, channels, attn)
        gap = abs(count_parameters(m.unet) - target_params)
        if best is None or gap < best[0]:
            best = (gap, m, channels, attn)
    _, m, channels, attn = best
    m.layout = {"block_out_channels": list(channels), "attention": attn}
    return m


def _train_block(model, opts, scheds, batches, state, n, amp, channels_last, seconds=math.inf) -> list[float]:
    """`n` more training steps of one model, or fewer where their time reaches `seconds`; returns each
    step's seconds."""
    times, spent = [], 0.0
    while n > 0:
        epoch, start = divmod(state["step"], len(batches))
        for x, y in batches.epoch(epoch, start):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            t0 = time.perf_counter()
            losses = model.train_step(x, y, opts, amp)
            for s in scheds:
                s.step()
            loss = float(losses["loss"])                                           # waits for the step
            times.append(time.perf_counter() - t0)
            spent += times[-1]
            state["step"] += 1
            state["loss"] = loss
            n = n - 1 if spent < seconds else 0
            if n == 0:
                break
    return times


def _reference(clf, test, train, n: int, seed: int) -> dict:
    """The real side of the protocol's scores: the domain classifier's features of the first n test images,
    their Gaussian, and the real-data floor (n training images drawn at seed + 1, scored like a model)."""
    real = features(clf, test.images[:n]).numpy()                                 # (n, F)
    mu, cov = gaussian(real)
    ref = {"real": real, "mu": mu, "cov": cov}
    g = torch.Generator().manual_seed(seed + 1)
    ref["floor"] = _score(clf, train.images[torch.randperm(len(train), generator=g)[:n]], ref)
    return ref


def _score(clf, images, ref: dict) -> dict:
    """FD of uint8 images (n, C, H, W) against the reference in the domain classifier's features, with
    precision/recall (k = 3) and density/coverage (k = 5) as the protocol computes them."""
    fake = features(clf, images).numpy()                                          # (n, F)
    k = EvalConfig()
    return {"fd": frechet_distance(*gaussian(fake), ref["mu"], ref["cov"]), **prdc(ref["real"], fake, k.pr_k, k.dc_k)}


def _sample_timed(model, n, batch, seed, device, precision):
    g = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    with autocast(device, precision):
        model.sample(2, generator=torch.Generator(device=device).manual_seed(0))   # warm-up
        t0 = time.perf_counter()
        out = [D.to_uint8(model.sample(min(batch, n - i), generator=g)) for i in range(0, n, batch)]
        seconds = time.perf_counter() - t0
    model.train()
    return torch.cat(out), seconds


def _prepare(args, model: str):
    """(cfg, spec, device, train, test, clf): the profile's config, `model`'s train spec, the device, the
    data's splits and the protocol's domain classifier (--classifier, or one trained with the profile's
    classifier settings in `classifier-<tag>` beside --out, and reused by later runs of that tag)."""
    set_threads(args.threads)
    raw = C.load(args.config)
    raw["profile"] = args.profile
    cfg = C.resolve(raw, args.config)
    spec = C.train_spec(cfg, model, 0)
    device = pick_device(args.device)
    root, dataset = cfg["data"]["root"], cfg["dataset"]
    D.prepare(dataset, root, cfg["data"]["debian_dir"], Path(args.out).with_suffix(".manifest.json"))
    train, test = D.load(dataset, root, "train"), D.load(dataset, root, "test")
    if args.classifier:
        clf = load_classifier(args.classifier, device)
    else:  # the protocol's judge, trained here with the profile's classifier settings
        cdir = Path(args.out).parent / f"classifier-{Paths(args.profile, dataset=dataset).tag}"
        cdir.mkdir(parents=True, exist_ok=True)
        if not (cdir / "classifier.pt").exists():
            train_classifier(C.classifier_spec(cfg), cdir, args.threads)
        clf = load_classifier(cdir / "classifier.pt", device)
    return cfg, spec, device, train, test, clf


def rounds(totals: dict[str, int], block: int):
    """The alternating schedule of models trained for different step counts (`--ours-steps`): per round, the steps
    each model takes, so that every model has done the same share of its total after each round (the longest
    one `block` steps a round)."""
    n = -(-max(totals.values()) // block)
    done = dict.fromkeys(totals, 0)
    for i in range(1, n + 1):
        step = {k: round(t * i / n) - done[k] for k, t in totals.items()}
        for k, v in step.items():
            done[k] += v
        yield step


def run(args) -> dict:
    cfg, spec, device, train, test, clf = _prepare(args, "ddpm")
    dataset = cfg["dataset"]
    batch = args.batch or spec["train"]["batch_size"]
    hp = {**spec["hparams"], **json.loads(args.ours_hparams)}
    if args.sample_steps:
        hp["sample_steps"] = args.sample_steps
    torch.manual_seed(0)
    ours = build("ddpm", hp, train.shape).to(device)
    peer = build_peer(ours.cfg, train.shape, count_parameters(ours.unet)).to(device)
    precision = resolve_precision(args.precision, device)
    channels_last = args.channels_last
    models = {"ours": ours, "diffusers": peer}
    totals = {"ours": args.ours_steps or args.steps, "diffusers": args.steps}
    run_state = {}
    for name, m in models.items():
        if channels_last:
            m.to(memory_format=torch.channels_last)
        opts = m.configure_optimizers()
        run_state[name] = {"opts": opts, "scheds": m.lr_schedulers(opts, totals[name]), "times": [],
                           "state": {"step": 0}, "batches": D.Batches(train, batch, args.seed, device)}
    amp = lambda: autocast(device, precision)  # noqa: E731
    log.info("training %s steps at batch %d (%s, %s): ours %d params, diffusers %d params %s",
             totals, batch, precision, "channels_last" if channels_last else "contiguous",
             count_parameters(ours.unet), count_parameters(peer.unet), peer.layout)
    torch.manual_seed(args.seed)
    for share in rounds(totals, args.block):
        for name, m in models.items():
            r = run_state[name]
            r["times"] += _train_block(m, r["opts"], r["scheds"], r["batches"], r["state"], share[name], amp,
                                       channels_last)
        msg = "  ".join(f"{k}: step {len(r['times'])}/{totals[k]} loss {r['state']['loss']:.4f}, "
                        f"{1e3 * statistics.median(r['times']):.0f} ms/step" for k, r in run_state.items())
        print(msg, file=sys.stderr, flush=True)

    ref = _reference(clf, test, train, args.n, args.seed)
    out = {"profile": args.profile, "dataset": dataset, "device": str(device), "threads": torch.get_num_threads(),
           "steps": args.steps, "steps_by_model": totals, "batch_size": batch, "precision": precision,
           "channels_last": channels_last,
           "sampler": {"name": "ddim", "steps": ours.cfg.sample_steps, "eta": ours.cfg.ddim_eta},
           "ours_hparams": {k: hp[k] for k in ("width", "patch", "mults", "res_blocks", "attn_levels", "lr")},
           "n": args.n, "floor_fd": ref["floor"]["fd"],
           "models": {}}
    for name, m in models.items():
        imgs, secs = _sample_timed(m, args.n, args.sample_batch, args.seed, device, precision)
        times = run_state[name]["times"]
        out["models"][name] = {
            "params": count_parameters(m.unet), "steps": len(times), "final_loss": run_state[name]["state"]["loss"],
            "ms_per_step_median": 1e3 * statistics.median(times), "ms_per_step_mean": 1e3 * statistics.fmean(times),
            "train_seconds": sum(times), "fd": _score(clf, imgs, ref)["fd"],
            "sample_ms_per_image": 1e3 * secs / args.n, **({"layout": m.layout} if name == "diffusers" else {})}
        log.info("%s: %s", name, out["models"][name])
    save_json(out, args.out)
    return out


# --------------------------------------------------------------------------- DCGAN against pytorch/examples'

PEER_SIDE = 32  # the DCGAN peer's image side: Fashion-MNIST's 28 x 28 padded by 2 on every side


@dataclass
class ExampleDCGANConfig:
    """pytorch/examples' DCGAN settings (the defaults of its dcgan/main.py)."""
    nz: int = hp(100, minimum=1, doc="size of the latent z")
    ngf: int = hp(64, minimum=1, doc="generator channels at its last stage (2x, 4x before it)")
    ndf: int = hp(64, minimum=1, doc="discriminator channels after its first conv (2x, 4x after it)")
    lr: float = hp(2e-4, exclusive_minimum=0, doc="Adam's learning rate, both players")
    beta1: float = hp(0.5, minimum=0, maximum=1)
    beta2: float = hp(0.999, minimum=0, maximum=1)


class ExampleGenerator(nn.Module):
    """pytorch/examples' DCGAN generator at 32 x 32: z as a 1 x 1 map, a transposed conv to 4 x 4, then
    stride-2 transposed convs that double the side, with BatchNorm and ReLU between and tanh at the end.
    The 64 x 64 original has one more stage (8 ngf channels at 4 x 4); here the widths run 4, 2, 1 ngf.
    Args: nz (latent size), ngf (channels at the last stage), nc (image channels)."""

    def __init__(self, nz: int, ngf: int, nc: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, 4 * ngf, 4, 1, 0, bias=False),                  # (B, 4ngf, 4, 4)
            nn.BatchNorm2d(4 * ngf), nn.ReLU(True),
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False),             # (B, 2ngf, 8, 8)
            nn.BatchNorm2d(2 * ngf), nn.ReLU(True),
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1, bias=False),                 # (B, ngf, 16, 16)
            nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())            # (B, nc, 32, 32) in [-1, 1]

    def forward(self, z):  # (B, nz) -> (B, nc, 32, 32)
        return self.main(z[:, :, None, None])


class ExampleDiscriminator(nn.Module):
    """pytorch/examples' DCGAN discriminator at 32 x 32: stride-2 convs that halve the side, with
    LeakyReLU(0.2) and BatchNorm from the second conv on, then a 4 x 4 conv to one logit. The 64 x 64
    original has one more stage (8 ndf channels at 4 x 4) and ends in a sigmoid, which here moves into the
    loss (BCE on logits: the same loss, and safe under bf16 autocast). Args: nc (image channels), ndf."""

    def __init__(self, nc: int, ndf: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),      # (B, ndf, 16, 16)
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False),                          # (B, 2ndf, 8, 8)
            nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=False),                      # (B, 4ndf, 4, 4)
            nn.BatchNorm2d(4 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * ndf, 1, 4, 1, 0, bias=False))                             # (B, 1, 1, 1)

    def forward(self, x):  # (B, nc, 32, 32) in [-1, 1] -> logits (B,)
        return self.main(x).flatten()


def _example_init(m: nn.Module) -> None:
    """The example's initialisation (Radford et al. 2016): conv weights N(0, 0.02), BatchNorm scales
    N(1, 0.02) and shifts 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class ExampleDCGAN(GenerativeModel):
    """The DCGAN peer: pytorch/examples' DCGAN (its dcgan/main.py; Radford et al. 2016), written here from
    its published architecture and recipe, at 32 x 32 instead of the original's 64 x 64, so that G and D
    have one up- and one down-sampling stage fewer (see `ExampleGenerator`, `ExampleDiscriminator`).

    Images of side up to 32 are padded to 32 x 32 with `background` (Fashion-MNIST: 28 + 2 + 2, with its
    black background); samples are cropped back to the data's H x W before anyone scores them. A step, as
    the example's: D on a real batch labelled 1 and G's detached fakes labelled 0 (BCE), one Adam step;
    then G on the same fakes labelled 1 (the non-saturating loss), one Adam step. No EMA of G's weights.
    Samples are drawn as the example draws its images: G in training mode (BatchNorm on each batch's own
    statistics; the running statistics, which nothing reads, move) in batches of `sample_batch`.

    Args: cfg (ExampleDCGANConfig), shape (C, H, W) of the data, background (the padding value in [0, 1]),
    sample_batch (G's batch when sampling: the training batch size)."""

    family = "gan"
    latent_sampling = None
    d_output = "probability"

    def __init__(self, cfg: ExampleDCGANConfig, shape, background: float = 0.0, sample_batch: int = 64):
        super().__init__(cfg, shape)
        c, h, w = self.shape
        if max(h, w) > PEER_SIDE or (PEER_SIDE - h) % 2 or (PEER_SIDE - w) % 2:
            raise ValueError(f"the DCGAN peer pads images to {PEER_SIDE} x {PEER_SIDE}, evenly on both sides: "
                             f"{h} x {w} cannot be; use a dataset whose images are at most {PEER_SIDE} pixels "
                             "on a side, with an even side (Fashion-MNIST, MNIST, CIFAR-10)")
        self.border = ((PEER_SIDE - h) // 2, (PEER_SIDE - w) // 2)
        self.background, self.sample_batch = float(background), int(sample_batch)
        self.G = ExampleGenerator(cfg.nz, cfg.ngf, c)
        self.D = ExampleDiscriminator(c, cfg.ndf)
        self.apply(_example_init)

    def padded(self, x):  # (B, C, H, W) in [0, 1] -> (B, C, 32, 32) in [-1, 1]
        bh, bw = self.border
        return F.pad(x, (bw, bw, bh, bh), value=self.background) * 2 - 1

    def crop(self, x):  # (B, C, 32, 32) -> (B, C, H, W)
        bh, bw = self.border
        return x[..., bh:PEER_SIDE - bh, bw:PEER_SIDE - bw]

    def configure_optimizers(self):
        kw = dict(lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2))
        return {"d": torch.optim.Adam(self.D.parameters(), **kw), "g": torch.optim.Adam(self.G.parameters(), **kw)}

    def train_step(self, x, y, optimizers, amp=nullcontext):
        real = self.padded(x)                                                     # (B, C, 32, 32)
        z = torch.randn(len(x), self.cfg.nz, device=x.device)                     # (B, nz)
        with amp():
            d_real = self.D(real).float()                                         # logits (B,)
            fake = self.G(z)                                                      # (B, C, 32, 32)
            d_fake = self.D(fake.detach()).float()
            d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["d"].step()
        with amp():
            d_gen = self.D(fake).float()                                          # the updated D on the same fakes
            g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers["g"].step()
        return {"loss": (d_loss + g_loss).detach(), "d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    @torch.no_grad()
    def sample(self, n, generator=None):
        device = next(self.G.parameters()).device
        chunks = math.ceil(n / self.sample_batch)
        z = torch.randn(chunks * self.sample_batch, self.cfg.nz, generator=generator, device=device)
        was_training = self.G.training
        self.G.train()
        x = torch.cat([self.G(zb).float() for zb in z.split(self.sample_batch)])[:n]   # (n, C, 32, 32)
        self.G.train(was_training)
        return ((self.crop(x) + 1) / 2).clamp(0, 1)                               # (n, C, H, W) in [0, 1]


def _warm_up(model, batches, steps, amp, channels_last) -> None:
    """A few untimed steps of a throwaway copy: CUDA's kernels and workspaces are set up before the clock
    runs, for whichever model would otherwise pay for them first."""
    m = copy.deepcopy(model)
    _train_block(m, m.configure_optimizers(), [], batches, {"step": 0}, steps, amp, channels_last)
    del m


def race(models: dict, train, batch_size: int, seed: int, device, seconds: float, block: int,
         amp=nullcontext, channels_last: bool = False, score=None, warmup: int = 2, verbose: bool = False) -> dict:
    """Train `models` (name -> model with `train_step`) side by side on the same batches, and score them at
    equal images seen and at equal training time.

    1. Alternating: each model in turn trains `block` steps (the order swaps every round, so that other
       load on the machine slows each alike), until one of them has spent `seconds` in training steps.
       All have then taken the same S steps: the equal-images point, where each is scored.
    2. Each model then trains on alone until its time reaches T, the slowest model's time at S (at least
       `seconds`, at most a block more): the equal-time point (to one step), where each model that moved
       is scored again; the slowest model's equal-time score is its equal-images score.

    Time is each model's own training steps (synchronised by reading the loss), nothing else. `score(name,
    model)` returns a dict of scores (None: no scoring). Returns {"equal_images": {"steps", "images",
    "models": {name: {"seconds", ...scores}}}, "equal_time": {"seconds", "models": {name: {"steps", "images",
    "seconds", ...scores}}}, "training": {name: {"steps", "images_per_s", "ms_per_step_median", ...}}}."""
    names = list(models)
    for name in names:
        _warm_up(models[name], D.Batches(train, batch_size, seed, device), warmup, amp, channels_last)
    runs = {name: {"opts": models[name].configure_optimizers(), "times": [], "state": {"step": 0},
                   "batches": D.Batches(train, batch_size, seed, device)} for name in names}
    spent = lambda name: sum(runs[name]["times"])  # noqa: E731
    score = score or (lambda name, model: {})

    def train(name, n, budget=math.inf):
        r = runs[name]
        r["times"] += _train_block(models[name], r["opts"], [], r["batches"], r["state"], n, amp, channels_last,
                                   budget)

    def report(phase):
        if verbose:
            msg = "  ".join(f"{k}: step {r['state']['step']}, {spent(k):.1f} s, loss {r['state']['loss']:.3f}"
                            for k, r in runs.items())
            print(f"{phase}  {msg}", file=sys.stderr, flush=True)

    torch.manual_seed(seed)
    rounds, shown = 0, time.perf_counter()
    while max(spent(k) for k in names) < seconds:                                  # 1: alternating blocks
        for name in (names if rounds % 2 == 0 else names[::-1]):
            train(name, block)
        rounds += 1
        if time.perf_counter() - shown > 10:
            report("alternating")
            shown = time.perf_counter()
    steps = runs[names[0]]["state"]["step"]
    out = {"equal_images": {"steps": steps, "images": steps * batch_size,
                            "models": {k: {"seconds": spent(k), **score(k, models[k])} for k in names}}}
    report(f"equal images ({steps} steps)")
    budget = max(spent(k) for k in names)
    out["equal_time"] = {"seconds": budget, "models": {}}
    for name in names:                                                            # 2: each on to the slowest's time
        while spent(name) < budget:
            train(name, block, budget - spent(name))
        s = runs[name]["state"]["step"]
        scores = out["equal_images"]["models"][name] if s == steps else {"seconds": spent(name),
                                                                          **score(name, models[name])}
        out["equal_time"]["models"][name] = {**scores, "steps": s, "images": s * batch_size}
    report(f"equal time ({budget:.1f} s)")
    out["training"] = {k: {"steps": len(r["times"]), "seconds": spent(k), "final_loss": r["state"]["loss"],
                           "images_per_s": len(r["times"]) * batch_size / spent(k),
                           "ms_per_step_median": 1e3 * statistics.median(r["times"]),
                           "ms_per_step_mean": 1e3 * statistics.fmean(r["times"])} for k, r in runs.items()}
    return out


def run_dcgan(args) -> dict:
    """Our DCGAN against pytorch/examples' DCGAN at equal wall time and at equal images seen.

        python -m genreview.bench.peers dcgan --profile small --seconds 120 --out bench/dcgan_vs_pytorch_examples.json

    - ours: `models.dcgan.DCGAN` with the profile's hyperparameters (`hparams.dcgan`: for small, width_d 32,
      an EMA of G for sampling) and batch size, on the 28 x 28 images;
    - pytorch_examples: `ExampleDCGAN`, the example's networks (ngf = ndf = 64, nz = 100) and recipe
      (Adam 2e-4, betas (0.5, 0.999), BCE, N(0, 0.02) initialisation), at 32 x 32 (the images padded by 2,
      its samples cropped back to 28 x 28), on the same batches.

    Both train under the same precision and memory format (--precision, --channels-last) and are timed
    alternately in blocks of --block steps (`race`): scored when they have seen the same images, and when
    they have spent the same training time (about --seconds; the slower one's time). Scores are the
    protocol's: FD in the domain classifier's features at N = --n against the test split, precision/recall
    and density/coverage, the real-data floor beside them (N training images). Also reported: parameters,
    images/s and ms per step, sampling ms per image. The target (the "speed and GPU correctness" issue):
    our FD no worse than the peer's at equal wall time."""
    cfg, spec, device, train, test, clf = _prepare(args, "dcgan")
    batch = spec["train"]["batch_size"]
    n = args.n or cfg["eval"]["n_samples"]
    precision = resolve_precision(args.precision, device)
    channels_last = args.channels_last
    torch.manual_seed(args.seed)
    ours = build("dcgan", spec["hparams"], train.shape).to(device)
    background = float(train.images[:, :, 0, :].flatten().mode().values) / 255    # the top rows' commonest value
    torch.manual_seed(args.seed)
    peer = ExampleDCGAN(ExampleDCGANConfig(), train.shape, background, batch).to(device)
    models = {"ours": ours, "pytorch_examples": peer}
    if channels_last:
        for m in models.values():
            m.to(memory_format=torch.channels_last)
    ref = _reference(clf, test, train, n, args.seed)

    def score(name, model):
        imgs, secs = _sample_timed(model, n, args.sample_batch, args.seed, device, precision)   # (n, C, H, W) uint8
        return {**_score(clf, imgs, ref), "sample_ms_per_image": 1e3 * secs / n}

    log.info("DCGAN race on %s (%s, %s), batch %d, ~%g s each: ours %d params (G %d, D %d), pytorch_examples "
             "%d params (G %d, D %d), padding with %.3f", device_name(device), precision,
             "channels_last" if channels_last else "contiguous", batch, args.seconds, count_parameters(ours.G)
             + count_parameters(ours.D), count_parameters(ours.G), count_parameters(ours.D),
             count_parameters(peer), count_parameters(peer.G), count_parameters(peer.D), background)
    res = race(models, train, batch, args.seed, device, args.seconds, args.block, lambda: autocast(device, precision),
               channels_last, score, args.warmup, verbose=True)
    out = {"profile": args.profile, "dataset": cfg["dataset"], "device": str(device),
           "device_name": device_name(device), "threads": torch.get_num_threads(), "batch_size": batch,
           "precision": precision, "channels_last": channels_last, "seconds": args.seconds, "block": args.block,
           "n": n, "floor": ref["floor"],
           "profile_steps": spec["train"]["epochs"] * (len(train) // batch),
           "models": {"ours": {"params_g": count_parameters(ours.G), "params_d": count_parameters(ours.D),
                               "hparams": spec["hparams"], "side": train.shape[-1]},
                      "pytorch_examples": {"params_g": count_parameters(peer.G), "params_d": count_parameters(peer.D),
                                           "hparams": vars(peer.cfg), "side": PEER_SIDE,
                                           "padding": list(peer.border), "background": background}},
           "equal_images": res["equal_images"], "equal_time": res["equal_time"]}
    for name, m in out["models"].items():
        m["params"] = m["params_g"] + m["params_d"]
        m.update(res["training"][name])
    fd = {k: v["fd"] for k, v in res["equal_time"]["models"].items()}
    out["target"] = {"ours_fd_no_worse_at_equal_time": fd["ours"] <= fd["pytorch_examples"]}
    for point in ("equal_images", "equal_time"):
        log.info("FD at %s: %s", point.replace("_", " "), {k: v["fd"] for k, v in res[point]["models"].items()})
    save_json(out, args.out)
    return out


def _ddpm_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genreview.bench.peers [ddpm]", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--profile", default="small", choices=["smoke", "small", "full"],
                   help="whose hparams.ddpm, batch size and data settings to use (default small)")
    p.add_argument("--steps", type=int, default=1000, help="training steps of each model")
    p.add_argument("--ours-steps", type=int, default=0,
                   help="our model's training steps where they differ from --steps (e.g. as many as fit in the "
                        "peer's training time: an equal-time comparison); the two still alternate in blocks")
    p.add_argument("--batch", type=int, default=0, help="batch size (0: the profile's)")
    p.add_argument("--block", type=int, default=25, help="steps per turn when the two models alternate")
    p.add_argument("--n", type=int, default=1000, help="samples for FD (and test images as its reference)")
    p.add_argument("--sample-batch", type=int, default=256)
    p.add_argument("--sample-steps", type=int, default=0, help="DDIM steps (0: the profile's sample_steps)")
    p.add_argument("--ours-hparams", default="{}",
                   help='JSON overrides of our DDPM\'s hyperparameters, e.g. \'{"patch": 1}\' (the peer follows the '
                        'parameter count)')
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    return _run_options(p, "bench/ddpm_vs_diffusers.json")


def _run_options(p: argparse.ArgumentParser, out: str) -> argparse.ArgumentParser:
    """The options every peer race takes: where it runs, its seed, the judge and the report."""
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier", help="a trained classifier.pt (default: train one beside --out)")
    p.add_argument("--out", default=out)
    return p


def _dcgan_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m genreview.bench.peers dcgan", description=run_dcgan.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--profile", default="small", choices=["smoke", "small", "full"],
                   help="whose hparams.dcgan, batch size, eval N and data settings to use (default small)")
    p.add_argument("--seconds", type=float, default=120.0,
                   help="training seconds of each model (the slower one's time at the equal-images point)")
    p.add_argument("--block", type=int, default=50, help="steps per turn when the two models alternate")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps of a throwaway copy of each model first")
    p.add_argument("--n", type=int, default=0,
                   help="samples scored (and test images as the reference); 0: the profile's eval.n_samples")
    p.add_argument("--sample-batch", type=int, default=256, help="our sampling batch (the peer samples in "
                                                                 "batches of the training batch size)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="both models' precision")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="both models' memory format")
    return _run_options(p, "bench/dcgan_vs_pytorch_examples.json")


def main(argv=None) -> int:
    """`dcgan ...` runs `run_dcgan`; anything else (`ddpm ...`, or no peer named, as before) runs `run`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["dcgan"]:
        args, bench = _dcgan_parser().parse_args(argv[1:]), run_dcgan
    else:
        args, bench = _ddpm_parser().parse_args(argv[1:] if argv[:1] == ["ddpm"] else argv), run
    logging_setup()
    res = bench(args)
    print(json.dumps(res, indent=2))
    return 0


def logging_setup():
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


if __name__ == "__main__":
    sys.exit(main())
