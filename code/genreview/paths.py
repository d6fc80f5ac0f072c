"""Every file the pipeline reads or writes, named once (the Snakefile and the tests use this). A leaf: it
imports nothing from genreview. Results, logs, benchmarks, figures, tables and the paper of each build
live under its tag (`Paths.tag`), so builds of different profiles never overwrite each other."""
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

    @property
    def judges_dir(self) -> str:
        """The judges trained once per build (evaluation/judges.py): <judge>.pt, <judge>_reference.pt,
        judges.json."""
        return f"{self.results}/judges"

    def judge_dir(self, model: str, seed) -> str:
        """One run's samples scored in every judge: judges.json."""
        return f"{self.results}/judges/{model}/seed{seed}"

    def reproduce_dir(self, model: str, seed) -> str:
        """A reviewer's re-run of one model at one seed (run/, eval/, report.json, report.md): never the
        paper's runs."""
        return f"{self.results}/reproduce/{model}/seed{seed}"

    @property
    def reference(self) -> str:
        return f"{self.results}/reference.json"

    @property
    def reference_features(self) -> str:
        """The reference images' classifier features, computed once and loaded by every scoring job."""
        return f"{self.results}/reference_features.pt"

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

    @property
    def figures(self) -> str:
        return f"figures/{self.tag}"

    @property
    def tables(self) -> str:
        return f"tables/{self.tag}"

    @property
    def paper_build(self) -> str:
        """The rendered templates, compiled in place by latexmk."""
        return f"build/{self.tag}/paper"

    @property
    def pdf(self) -> str:
        return f"build/{self.tag}/review.pdf"

    templates = "paper"
    latest_pdf = "build/review.pdf"  # a copy of the PDF of the latest build, whichever profile it was

