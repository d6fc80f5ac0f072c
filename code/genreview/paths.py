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


def figure_names(models: list[str]) -> list[str]:
    """The files `make_figures` writes for these models (the Snakefile's outputs)."""
    from .models import REGISTRY

    names = ["samples.pdf", "training_curves.pdf", "quality_vs_cost.pdf", "progress.pdf"]
    if any(REGISTRY[m][0].likelihood != "none" for m in models):
        names.append("likelihood_vs_quality.pdf")
    if "vae" in models:
        names.append("vae_reconstructions.pdf")
    if {"vae", "dcgan"} & set(models):
        names.append("interpolation.pdf")
    if "ddpm" in models:
        names.append("ddpm_chain.pdf")
    return names
