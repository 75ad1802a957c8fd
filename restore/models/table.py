"""The model registry as a table (terminal and README.md).

``python -m restore.models.table README.md`` rewrites the block between the ``models-table`` markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from losses.table import format_markdown, format_text, replace_block

from .registry import ModelSpec, specs

COLUMNS = ("name", "task", "scale", "parameters", "supports_fp16", "supports_bf16", "size_multiple",
           "receptive_field", "exact_tiling", "cpu_bf16", "inputs")
START, END = "<!-- models-table:start -->", "<!-- models-table:end -->"


def record(spec: ModelSpec) -> dict[str, object]:
    """The spec's row plus the parameter count of the registered configuration."""
    import torch

    try:
        with torch.device("meta"):  # no memory, no initialisation
            model = spec.cls(**spec.config)
    except (NotImplementedError, RuntimeError):  # constructors that read tensor values
        model = spec.cls(**spec.config)
    count = sum(p.numel() for p in model.parameters())
    return {**spec.row(), "parameters": f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"}


def rows(task: str | None = None) -> list[dict[str, object]]:
    return [record(s) for s in specs() if task is None or s.task == task]


def text_table(records: list[dict[str, object]]) -> str:
    """Aligned plain-text table of ``rows()`` records (the terminal's ``restore models``)."""
    return format_text(records, COLUMNS)


def markdown_table(records: list[dict[str, object]] | None = None) -> str:
    """Markdown table with summaries; every registered model by default."""
    return format_markdown(rows() if records is None else records, (*COLUMNS, "summary"))


def update_block(path: Path) -> bool:
    """Rewrite the model table between the markers in ``path``; True when the file changed."""
    return replace_block(path, START, END, markdown_table())


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["README.md"]:
        print(f"{arg}: {'updated' if update_block(Path(arg)) else 'up to date'}")
