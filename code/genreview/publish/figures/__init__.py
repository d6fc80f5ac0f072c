"""The paper's figures, drawn by matplotlib from the results files only, one module per paper section:

    samples        samples.pdf, progress.pdf                                   (results)
    quality        quality_vs_cost.pdf, likelihood_vs_quality.pdf              (results)
    training       training_curves.pdf, quality_vs_training.pdf, quality_vs_compute.pdf (results)
    vae            vae_reconstructions.pdf, interpolation.pdf                  (VAE)
    gan_dynamics   gan_dynamics.pdf, mode_coverage.pdf                         (GAN)
    gan_samples    style_mixing.pdf, translation.pdf, gan_inversion.pdf        (GAN)
    diffusion      ddpm_chain.pdf, diffusion_chains.pdf, sampling_cost.pdf, sweep_samples.pdf,
                   guidance_<model>.pdf                                        (diffusion)
    ledger         claims_vs_compute.pdf                                       (comparison)

Each module's `figures(plan)` declares the files it draws for a build's models and studies, each with the
function that draws it: `figure_names` (the Snakefile's outputs) and `make_figures` read the same
declarations, so the two always agree.
"""
from __future__ import annotations

from pathlib import Path

from ...files import load_json
from ..plan import Plan
from . import ledger
from . import diffusion
from . import gan_dynamics
from . import gan_samples
from . import quality
from . import samples
from . import training
from . import vae
from .inputs import Draw, load_inputs

MODULES = (samples, training, quality, vae, diffusion, gan_dynamics, gan_samples, ledger)


def declared(plan: Plan) -> dict[str, Draw]:
    """Every figure of a build: file name -> the function that draws it."""
    return {name: draw for module in MODULES for name, draw in module.figures(plan).items()}


def figure_names(plan: Plan) -> list[str]:
    """The files `make_figures` writes for this plan (the Snakefile's outputs)."""
    return list(declared(plan))


def make_figures(summary_path, run_dirs: dict, eval_dirs: dict, data_root: str, out_dir,
                 sweep_dirs: dict | None = None, guidance_dirs: dict | None = None,
                 dynamics_dirs: dict | None = None, probe_dirs: dict | None = None,
                 claims_path=None) -> list[Path]:
    """Draw every declared figure into out_dir; returns their paths. run_dirs / eval_dirs / sweep_dirs /
    guidance_dirs / probe_dirs: model -> folder of its first seed's training run / evaluation / sampling
    sweep / guidance sweep / probes; dynamics_dirs: model -> folder of its training-dynamics study;
    claims_path: the build's claims.json."""
    summary = load_json(summary_path)
    inputs = load_inputs(summary, run_dirs, eval_dirs, data_root, sweep_dirs, guidance_dirs, dynamics_dirs,
                         probe_dirs)
    inputs.claims = load_json(claims_path) if claims_path else None
    out = Path(out_dir)
    paths = []
    for name, draw in declared(Plan.from_summary(summary)).items():
        draw(inputs, out / name)
        paths.append(out / name)
    return paths
