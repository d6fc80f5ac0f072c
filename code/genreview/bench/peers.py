"""Our DDPM against diffusers' on the same budget: a benchmark, not a test.

    python -m genreview.bench.peers --steps 1000 --out bench/ddpm_vs_diffusers.json

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
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import config as C
from .. import data as D
from ..evaluation.classifier import load_classifier, train_classifier
from ..evaluation.metrics import features, frechet_distance, gaussian
from ..models import build
from ..models.base import EMA, GenerativeModel
from ..models.ddpm import DDPM
from ..utils import autocast, count_parameters, log, pick_device, resolve_precision, save_json, set_threads

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


def _train_block(model, opts, scheds, batches, state, n, amp, channels_last) -> list[float]:
    """`n` more training steps of one model; returns each step's seconds."""
    times = []
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
            state["step"] += 1
            state["loss"] = loss
            n -= 1
            if n == 0:
                break
    return times


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


def run(args) -> dict:
    set_threads(args.threads)
    raw = C.load(args.config)
    raw["profile"] = args.profile
    cfg = C.resolve(raw, args.config)
    spec = C.train_spec(cfg, "ddpm", 0)
    device = pick_device(args.device)
    root, dataset = cfg["data"]["root"], cfg["dataset"]
    D.prepare(dataset, root, cfg["data"]["debian_dir"], Path(args.out).with_suffix(".manifest.json"))
    train, test = D.load(dataset, root, "train"), D.load(dataset, root, "test")
    if args.classifier:
        clf = load_classifier(args.classifier, device)
    else:  # the protocol's judge, trained here with the profile's classifier settings
        cdir = Path(args.out).parent / "classifier"
        cdir.mkdir(parents=True, exist_ok=True)
        if not (cdir / "classifier.pt").exists():
            train_classifier(C.classifier_spec(cfg), cdir, args.threads)
        clf = load_classifier(cdir / "classifier.pt", device)

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
    run_state = {}
    for name, m in models.items():
        if channels_last:
            m.to(memory_format=torch.channels_last)
        opts = m.configure_optimizers()
        run_state[name] = {"opts": opts, "scheds": m.lr_schedulers(opts, args.steps), "times": [],
                           "state": {"step": 0}, "batches": D.Batches(train, batch, args.seed, device)}
    amp = lambda: autocast(device, precision)  # noqa: E731
    log.info("training %d steps each at batch %d (%s, %s): ours %d params, diffusers %d params %s",
             args.steps, batch, precision, "channels_last" if channels_last else "contiguous",
             count_parameters(ours.unet), count_parameters(peer.unet), peer.layout)
    torch.manual_seed(args.seed)
    done = 0
    while done < args.steps:
        n = min(args.block, args.steps - done)
        for name, m in models.items():
            r = run_state[name]
            r["times"] += _train_block(m, r["opts"], r["scheds"], r["batches"], r["state"], n, amp, channels_last)
        done += n
        msg = "  ".join(f"{k}: loss {r['state']['loss']:.4f}, {1e3 * statistics.median(r['times']):.0f} ms/step"
                        for k, r in run_state.items())
        print(f"step {done}/{args.steps}  {msg}", file=sys.stderr, flush=True)

    real = features(clf, test.images[:args.n])
    mu_r, cov_r = gaussian(real)
    g = torch.Generator().manual_seed(args.seed + 1)
    floor_imgs = train.images[torch.randperm(len(train), generator=g)[:args.n]]
    out = {"profile": args.profile, "dataset": dataset, "device": str(device), "threads": torch.get_num_threads(),
           "steps": args.steps, "batch_size": batch, "precision": precision, "channels_last": channels_last,
           "sampler": {"name": "ddim", "steps": ours.cfg.sample_steps, "eta": ours.cfg.ddim_eta},
           "ours_hparams": {k: hp[k] for k in ("width", "patch", "mults", "res_blocks", "attn_levels", "lr")},
           "n": args.n, "floor_fd": frechet_distance(*gaussian(features(clf, floor_imgs)), mu_r, cov_r),
           "models": {}}
    for name, m in models.items():
        imgs, secs = _sample_timed(m, args.n, args.sample_batch, args.seed, device, precision)
        times = run_state[name]["times"]
        out["models"][name] = {
            "params": count_parameters(m.unet), "final_loss": run_state[name]["state"]["loss"],
            "ms_per_step_median": 1e3 * statistics.median(times), "ms_per_step_mean": 1e3 * statistics.fmean(times),
            "train_seconds": sum(times), "fd": frechet_distance(*gaussian(features(clf, imgs)), mu_r, cov_r),
            "sample_ms_per_image": 1e3 * secs / args.n, **({"layout": m.layout} if name == "diffusers" else {})}
        log.info("%s: %s", name, out["models"][name])
    save_json(out, args.out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m genreview.bench.peers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--profile", default="small", choices=["smoke", "small", "full"],
                   help="whose hparams.ddpm, batch size and data settings to use (default small)")
    p.add_argument("--steps", type=int, default=1000, help="training steps of each model")
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
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier", help="a trained classifier.pt (default: train one beside --out)")
    p.add_argument("--out", default="bench/ddpm_vs_diffusers.json")
    args = p.parse_args(argv)
    logging_setup()
    res = run(args)
    print(json.dumps(res, indent=2))
    return 0


def logging_setup():
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


if __name__ == "__main__":
    sys.exit(main())
