"""Every file the pipeline reads or writes, named once (the Snakefile and the tests use this)."""
from __future__ import annotations

from dataclasses import dataclass


DEFAULT_DATASET = "fashion_mnist"


@dataclass(frozen=True)
class Paths:
    profile: str
    data_root: str = "data"
    dataset: str = DEFAULT_DATASET

    @property
    def tag(self) -> str:
        """The name of this build's results, logs and benchmarks folders: the profile, and for a dataset
        other than the default the dataset too (`small-cifar10`), so that runs on different datasets
        never overwrite each other."""
        return self.profile if self.dataset == DEFAULT_DATASET else f"{self.profile}-{self.dataset}"

    @property
    def results(self) -> str:
        return f"results/{self.tag}"

    @property
    def logs(self) -> str:
        return f"logs/{self.tag}"

    @property
    def benchmarks(self) -> str:
        return f"benchmarks/{self.tag}"

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

    def dynamics_dir(self, model: str) -> str:
        return f"{self.results}/dynamics/{model}"

    def probe_dir(self, model: str, seed) -> str:
        return f"{self.results}/probe/{model}/seed{seed}"

    def curve_dir(self, model: str, seed) -> str:
        """Quality against training compute: curve.json, and points/ (one file per scored snapshot)."""
        return f"{self.results}/curves/{model}/seed{seed}"

    def reproduce_dir(self, model: str, seed) -> str:
        """A reviewer's re-run of one model at one seed (run/, eval/, report.json, report.md): never the
        paper's runs."""
        return f"{self.results}/reproduce/{model}/seed{seed}"

    @property
    def reference(self) -> str:
        return f"{self.results}/reference.json"

    @property
    def summary(self) -> str:
        return f"{self.results}/summary.json"

    @property
    def claims(self) -> str:
        """Every claim of paper/claims.yaml with its verdict in this build."""
        return f"{self.results}/claims.json"

    @property
    def provenance(self) -> str:
        """Code, config hash, hardware, versions, and time and memory of every compute job."""
        return f"{self.results}/provenance.json"

    @property
    def arxiv(self) -> str:
        """The rendered paper as an arXiv submission (tex, .bbl, figures, tables)."""
        return f"build/{self.tag}/arxiv.tar.gz"

    @property
    def report(self) -> str:
        """Where README suggests `snakemake --report` write its HTML report (not a rule's output)."""
        return f"build/{self.tag}/report.html"

    figures = "figures"
    tables = "tables"
    templates = "paper"
    paper_build = "build/paper"
    pdf = "build/review.pdf"


def figure_names(models: list[str], sweep_models=(), guidance_models=(), dynamics_models=(),
                 probe_models=(), curve_models=()) -> list[str]:
    """The files `make_figures` writes for these models and studies (the Snakefile's outputs)."""
    from .publish.gan_figures import gan_figure_names
    from .models import DISPLAY, REGISTRY

    samplers = [m for m in models if DISPLAY[m][1] != "translation"]  # image-to-image models draw no samples
    names = ["samples.pdf", "training_curves.pdf", "quality_vs_cost.pdf", "quality_vs_training.pdf", "progress.pdf"]
    if any(REGISTRY[m][0].likelihood != "none" for m in samplers):
        names.append("likelihood_vs_quality.pdf")
    if "vae" in samplers:
        names.append("vae_reconstructions.pdf")
    if {"vae", "dcgan"} & set(samplers):
        names.append("interpolation.pdf")
    if "ddpm" in samplers:
        names.append("ddpm_chain.pdf")
    if any(m != "ddpm" and hasattr(REGISTRY[m][0], "make_scheduler") for m in samplers):
        names.append("diffusion_chains.pdf")
    if sweep_models:
        names.append("sampling_cost.pdf")
        if any(hasattr(REGISTRY[m][0], "make_scheduler") for m in sweep_models):
            names.append("sweep_samples.pdf")
    names += [f"guidance_{m}.pdf" for m in guidance_models]
    if curve_models:
        names.append("quality_vs_compute.pdf")
    return names + gan_figure_names(list(models), list(dynamics_models), list(probe_models))


def table_names(sweep_models=(), guidance_models=(), models=(), dynamics_models=(), curve_models=()) -> list[str]:
    """The files `write_tables` writes (the Snakefile's outputs)."""
    from .publish.gan_figures import gan_table_names
    from .models import DISPLAY

    names = ["results.tex", "cost.tex", "likelihood.tex"]
    if sweep_models:
        names.append("sweep.tex")
    names += [f"guidance_{m}.tex" for m in guidance_models]
    if curve_models:
        names.append("time_to_threshold.tex")
    return names + gan_table_names(bool(dynamics_models), any(DISPLAY[m][1] == "translation" for m in models))
