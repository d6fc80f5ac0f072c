"""The GAN section's models and how the paper names them, shared by its figures (`figures.gan_dynamics`,
`figures.gan_samples`) and its tables (`tables.gan`)."""
from __future__ import annotations

from ..models import DISPLAY

SECTION_FAMILIES = ("gan", "vae")  # the models of the GAN section: the adversarial ones and the VAE beside them
COVERAGE_FAMILIES = (*SECTION_FAMILIES, "diffusion")  # the mode-coverage figure's rows


def display_name(summary: dict, m: str) -> str:
    for part in ("models", "translation"):
        if m in (summary.get(part) or {}):
            return summary[part][m]["display"]
    return DISPLAY[m][0] if m in DISPLAY else m


def ordered(summary: dict, names) -> list[str]:
    """names in the summary's model order, those outside it after, in their own order."""
    names = list(names)
    order = summary.get("order", [])
    return [m for m in order if m in names] + [m for m in names if m not in order]


def domains(summary: dict) -> tuple[str, str]:
    """CycleGAN's two domains by class name ("A", "B" when the summary does not say)."""
    t = (summary.get("translation", {}).get("cyclegan") or {}).get("translation") or {}
    names = summary.get("class_names") or []
    out = []
    for key, default in (("domain_a", "A"), ("domain_b", "B")):
        v = t.get(key)
        v = v.get("mean") if isinstance(v, dict) else v
        out.append(names[int(v)] if v is not None and 0 <= int(v) < len(names) else default)
    return out[0], out[1]
