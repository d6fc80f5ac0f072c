"""The paper's LaTeX tables (booktabs, written by pandas from the summary; numbers formatted by
`formatting`), one module per paper section:

    results     results.tex, cost.tex, likelihood.tex, time_to_threshold.tex   (results)
    diffusion   sweep.tex, guidance_<model>.tex                                 (diffusion)
    gan         gan_study.tex, translation.tex                                  (GAN)
    claims      claims.tex, comparison.tex (written with the verdicts by `write_claims`)

Each module's `tables(plan)` declares the files it writes for a build's models and studies, each with the
function that makes it: `table_names` (the Snakefile's outputs) and `write_tables` read the same
declarations. Every table is written through `booktabs`.
"""
from __future__ import annotations

from pathlib import Path

from ..plan import Plan
from . import diffusion
from . import gan
from . import results
from .booktabs import write_booktabs

MODULES = (results, diffusion, gan)


def declared(plan: Plan) -> dict:
    """Every table `write_tables` writes: file name -> table(summary), a (frame, column format) pair."""
    return {name: table for module in MODULES for name, table in module.tables(plan).items()}


def table_names(plan: Plan) -> list[str]:
    """The files `write_tables` writes for this plan (the Snakefile's outputs)."""
    return list(declared(plan))


def write_tables(summary: dict, out_dir: str | Path) -> list[Path]:
    """Write every declared table into out_dir; returns their paths."""
    out = Path(out_dir)
    paths = []
    for name, table in declared(Plan.from_summary(summary)).items():
        df, column_format = table(summary)
        write_booktabs(df, out / name, column_format)
        paths.append(out / name)
    return paths
