"""Every file the pipeline reads or writes, named once (the Snakefile and the tests use this)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    profile: str
    data_root: str = "data"
    dataset: str = "fashion_mnist"

    @property
    def results(self) -> str:
        return f"results/{self.profile}"

    @property
    def logs(self) -> str:
        return f"logs/{self.profile}"

    @property
    def benchmarks(self) -> str:
        return f"benchmarks/{self.profile}"

    @property
    def manifest(self) -> str:
        return f"{self.data_root}/{self.dataset}.manifest.json"

    @property
    def classifier_dir(self) -> str:
        return f"{self.results}/classifier"

    def run_dir(self, model: str, seed) -> str:
        return f"{self.results}/runs/{model}/seed{seed}"

    def eval_dir(self, model: str, seed) -> str:
        return f"{self.results}/eval/{model}/seed{seed}"

    def sweep_dir(self, model: str, seed) -> str:
        return f"{self.results}/sweep/{model}/seed{seed}"

    def guidance_dir(self, model: str, seed) -> str:
        return f"{self.results}/guidance/{model}/seed{seed}"

    @property
    def reference(self) -> str:
        return f"{self.results}/reference.json"

    @property
    def summary(self) -> str:
        return f"{self.results}/summary.json"

    figures = "figures"
    tables = "tables"
    templates = "paper"
    paper_build = "build/paper"
    pdf = "build/review.pdf"


def figure_names(models: list[str], sweep_models=(), guidance_models=()) -> list[str]:
    """The files `make_figures` writes for these models and studies (the Snakefile's outputs)."""
    from .models import REGISTRY

    names = ["samples.pdf", "training_curves.pdf", "quality_vs_cost.pdf", "quality_vs_training.pdf", "progress.pdf"]
    if any(REGISTRY[m][0].likelihood != "none" for m in models):
        names.append("likelihood_vs_quality.pdf")
    if "vae" in models:
        names.append("vae_reconstructions.pdf")
    if {"vae", "dcgan"} & set(models):
        names.append("interpolation.pdf")
    if "ddpm" in models:
        names.append("ddpm_chain.pdf")
    if any(m != "ddpm" and hasattr(REGISTRY[m][0], "make_scheduler") for m in models):
        names.append("diffusion_chains.pdf")
    if sweep_models:
        names.append("sampling_cost.pdf")
        if any(hasattr(REGISTRY[m][0], "make_scheduler") for m in sweep_models):
            names.append("sweep_samples.pdf")
    names += [f"guidance_{m}.pdf" for m in guidance_models]
    return names


def table_names(sweep_models=(), guidance_models=()) -> list[str]:
    """The files `write_tables` writes (the Snakefile's outputs)."""
    names = ["results.tex", "cost.tex", "likelihood.tex"]
    if sweep_models:
        names.append("sweep.tex")
    return names + [f"guidance_{m}.tex" for m in guidance_models]
