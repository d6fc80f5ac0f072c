"""Writing a LaTeX table: every table of the paper goes through here, a pandas frame as a booktabs
tabular or a table already written as LaTeX text."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...files import atomic_path


def write_booktabs(df: pd.DataFrame, path: Path, column_format: str) -> None:
    """df as a booktabs tabular (cells are LaTeX already: no escaping), written atomically."""
    write_tex(df.to_latex(index=False, escape=False, column_format=column_format), path)


def write_tex(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def label_then_numbers(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """df with its column format: the first column left-aligned (the model), the others right-aligned."""
    return df, "l" + "r" * (len(df.columns) - 1)
