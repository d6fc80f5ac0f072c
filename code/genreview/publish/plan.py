"""What a build publishes, known from the config before any job runs: its models and the models of each
study. The figure and table writers declare their files from a `Plan` (`figures.figure_names`,
`tables.table_names`), so the Snakefile can name every output up front; the writers draw from a plan
read back from the summary, which holds the same lists."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..models import DISPLAY, REGISTRY


@dataclass(frozen=True)
class Plan:
    """models: every model of the build, image-to-image translators included; sweep, guidance, dynamics,
    probes, curves: the models of the sampling sweep, the guidance sweep, the training-dynamics study, the
    probes and the quality-against-compute curves."""
    models: tuple[str, ...]
    sweep: tuple[str, ...] = ()
    guidance: tuple[str, ...] = ()
    dynamics: tuple[str, ...] = ()
    probes: tuple[str, ...] = ()
    curves: tuple[str, ...] = ()

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, tuple(getattr(self, f.name)))

    @classmethod
    def from_summary(cls, summary: dict) -> Plan:
        """The plan the summary was built from (summary.json lists every model and study)."""
        return cls(list(summary["order"]) + list(summary.get("translation") or {}), summary.get("sweep") or {},
                   summary.get("guidance") or {}, summary.get("dynamics") or {}, summary.get("probes") or {},
                   summary.get("curves") or {})

    def family(self, model: str) -> str:
        return DISPLAY[model][1]

    @property
    def sampling_models(self) -> list[str]:
        """The models that draw samples (image-to-image translators do not)."""
        return [m for m in self.models if self.family(m) != "translation"]

    def has_likelihood(self, model: str) -> bool:
        return REGISTRY[model][0].likelihood != "none"
