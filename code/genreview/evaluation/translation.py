"""Evaluation of the image-to-image models (`genreview.models.cyclegan`, `genreview.models.srgan`), which draw no
unconditional samples and so are scored on test images they translate.

CycleGAN (Zhu et al. 2017), on n test images of each domain:
- translation success: the share of A -> B outputs that the protocol's domain classifier calls B
  (and of B -> A outputs it calls A), the measure of Zhu et al.'s FCN score in this setting;
- cycle reconstruction: mean L1 and MSE, in [0, 1] units, of A -> B -> A against A (and B -> A -> B);
- Frechet distance (and KID) of the translations against the real test images of the target class,
  beside the do-nothing baseline: the untranslated source images against the same reference (the
  Frechet distance is symmetric, so when n covers both classes' test images the two baselines agree).

Super-resolution (Pix2Pix-style GAN, or its L1-only baseline), on n test images x:
- PSNR and SSIM (torchmetrics, data_range 1) of upscale(downsample(x)) against x, after 8-bit rounding
  of the output, as an image file would hold it; PSNR is the mean over images of each image's PSNR,
  capped at PSNR_CAP_DB so that an exact reconstruction stays a finite number;
- FD (and KID) of the upscaled images against the test split;
- the same for bicubic interpolation, and the FD of the n originals themselves, for reference.

Both return a flat dict: numbers (floats and ints) for metrics.json, and uint8 tensors (keys that
start with "grid_") for the figures.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .. import data as D
from .classifier import DomainClassifier, predict
from .metrics import EvalConfig, Reference
from ..utils import Stopwatch

PSNR_CAP_DB = 100.0   # the PSNR of an image whose MSE is 1e-10 at data range 1


def default_reference(clf: DomainClassifier) -> Callable[[torch.Tensor], Reference]:
    """Reference builder with the protocol's defaults, KID subsets no larger than the real set."""
    def build(real: torch.Tensor) -> Reference:
        n = len(real)
        return Reference.from_images(clf, real, EvalConfig(n_samples=n, kid_subset_size=min(1000, n)))
    return build


@torch.no_grad()
def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-image PSNR in dB of images in [0, 1], (N, C, H, W), each capped at PSNR_CAP_DB."""
    from torchmetrics.image import PeakSignalNoiseRatio

    m = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="none")
    per_image = m(pred.float(), target.float())                                  # (N,), inf where exact
    return float(torch.nan_to_num(per_image, posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB).mean())


@torch.no_grad()
def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM (Wang et al. 2004; 11 x 11 Gaussian window, sigma 1.5) of images in [0, 1]."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    m = StructuralSimilarityIndexMeasure(data_range=1.0)
    for p, t in zip(pred.float().split(500), target.float().split(500)):
        m.update(p, t)
    return float(m.compute())


def bicubic(low: torch.Tensor) -> torch.Tensor:
    """The interpolation baseline: bicubic x2, clamped to [0, 1]."""
    return F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)


def _rounded(x: torch.Tensor) -> torch.Tensor:
    return D.to_unit(D.to_uint8(x))


def _timed(fn, x: torch.Tensor, device) -> tuple[torch.Tensor, float]:
    """fn over x on `device` in batches; (outputs on the CPU, milliseconds per image)."""
    fn(x[:4].to(device))  # warm-up
    with Stopwatch(torch.device(device)) as sw:
        out = torch.cat([fn(b.to(device)).float().cpu() for b in x.split(500)])
    return out, 1000 * sw.seconds / max(1, len(x))


@torch.no_grad()
def evaluate_translation(model, test: D.Split, clf: DomainClassifier,
                         reference_fn: Callable[[torch.Tensor], Reference] | None, device, n: int = 1000,
                         rows: int = 8) -> dict:
    """Score a translator on the test split (see the module docstring for what is measured).

    Args:
        model: a CycleGAN or SuperResolutionGAN, on `device`.
        test: the test split (uint8 images and labels).
        clf: the protocol's domain classifier.
        reference_fn: uint8 real images -> metrics.Reference; None builds one with EvalConfig's defaults.
        n: test images per domain (CycleGAN) or in all (super-resolution).
        rows: rows of each example grid.
    """
    reference_fn = reference_fn or default_reference(clf)
    model.eval()
    if model.translator == "unpaired":
        return _cyclegan(model, test, clf, reference_fn, device, n, rows)
    if model.translator == "super_resolution":
        return _super_resolution(model, test, reference_fn, device, n, rows)
    raise TypeError(f"{type(model).__name__} is not a translator: its translator is {model.translator!r}, expected "
                    f"'unpaired' (CycleGAN) or 'super_resolution'")


def _cyclegan(model, test, clf, reference_fn, device, n, rows) -> dict:
    cfg = model.cfg
    out = {"domain_a": int(cfg.domain_a), "domain_b": int(cfg.domain_b)}
    ms = []
    for src, dst, fwd, back, tag in ((cfg.domain_a, cfg.domain_b, model.translate_ab, model.translate_ba, "ab"),
                                     (cfg.domain_b, cfg.domain_a, model.translate_ba, model.translate_ab, "ba")):
        real_src = test.images[test.labels == src][:n]
        if not len(real_src):
            raise ValueError(f"the test split has no images of class {src}: check domain_a and domain_b")
        x = D.to_unit(real_src)                                                  # (n, C, H, W)
        y, t = _timed(fwd, x, device)                                            # source -> target
        rec, _ = _timed(back, y, device)                                         # -> source again
        ms.append(t)
        y8 = D.to_uint8(y)
        ref = reference_fn(test.images[test.labels == dst])
        scored, baseline = ref.score(y8), ref.score(real_src)
        cyc = "aba" if tag == "ab" else "bab"
        out.update({
            f"n_{tag[0]}": len(x),
            f"success_{tag}": float((predict(clf, y8) == dst).float().mean()),
            f"cycle_l1_{cyc}": float((rec - x).abs().mean()),
            f"cycle_mse_{cyc}": float((rec - x).pow(2).mean()),
            f"fd_{tag}": scored["fd"], f"kid_{tag}": scored["kid"],
            f"fd_{tag}_identity": baseline["fd"],
            f"grid_{tag}": torch.stack([real_src[:rows], y8[:rows], D.to_uint8(rec[:rows])], 1),  # (rows, 3, C, H, W)
        })
    out["translate_ms_per_image"] = sum(ms) / len(ms)
    return out


def _super_resolution(model, test, reference_fn, device, n, rows) -> dict:
    real = test.images[:n]
    x = D.to_unit(real)                                                          # (n, C, H, W)
    low = model.downsample(x)                                                    # (n, C, H/2, W/2)
    up, ms = _timed(model.upscale, low, device)
    up, bic = _rounded(up), _rounded(bicubic(low))
    ref = reference_fn(test.images)
    s_model, s_bic, s_orig = ref.score(D.to_uint8(up)), ref.score(D.to_uint8(bic)), ref.score(real)
    nearest = F.interpolate(low[:rows], scale_factor=2, mode="nearest")
    grid = torch.stack([D.to_uint8(nearest), D.to_uint8(bic[:rows]), D.to_uint8(up[:rows]), real[:rows]], 1)
    return {
        "n": len(x), "psnr": psnr(up, x), "ssim": ssim(up, x), "fd": s_model["fd"], "kid": s_model["kid"],
        "psnr_bicubic": psnr(bic, x), "ssim_bicubic": ssim(bic, x), "fd_bicubic": s_bic["fd"],
        "kid_bicubic": s_bic["kid"], "fd_original": s_orig["fd"], "upscale_ms_per_image": ms,
        "grid_sr": grid,                                                          # (rows, 4, C, H, W)
    }
