"""The registry as a table: plain text for the terminal, markdown for README.md.

``python -m losses.table README.md`` rewrites the block between the ``losses-table`` markers.
The formatting helpers take plain row dicts, so the model registry's table uses them too.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .registry import LossSpec, specs

COLUMNS = ("name", "kind", "modality", "lower_is_better", "input_range", "needs_weights", "fp32", "inputs")
START, END = "<!-- losses-table:start -->", "<!-- losses-table:end -->"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def rows(modality: str | None = None, kind: str | None = None) -> list[LossSpec]:
    return [
        s
        for s in specs()
        if (modality is None or s.modality in (modality, "any")) and (kind is None or s.kind == kind)
    ]


def format_text(records: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned plain-text table of ``records`` (dicts), one per line."""
    header = [c.replace("_", "-") for c in columns]
    body = [[_cell(r[c]) for c in columns] for r in records]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(records: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Markdown table of ``records``; the first column is shown as code."""
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |", "|" + "---|" * len(columns)]
    for r in records:
        cells = [f"`{r[columns[0]]}`"] + [_cell(r[c]).replace("|", "\\|") for c in columns[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(entries: list[LossSpec]) -> str:
    """Aligned plain-text table, one entry per line."""
    return format_text([s.row() for s in entries], COLUMNS)


def markdown_table(entries: list[LossSpec] | None = None) -> str:
    """Markdown table of every entry with its summary line."""
    entries = specs() if entries is None else entries
    return format_markdown([s.row() for s in entries], (*COLUMNS, "summary"))


def replace_block(path: Path, start: str, end: str, content: str) -> bool:
    """Rewrite the text between the ``start`` and ``end`` markers in ``path``; True when it changed."""
    text = path.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path}: markers {start} / {end} not found")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{content}\n{end}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def update_block(path: Path) -> bool:
    """Rewrite the loss table between the markers in ``path``; True when the file changed."""
    return replace_block(path, START, END, markdown_table())


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["README.md"]:
        print(f"{arg}: {'updated' if update_block(Path(arg)) else 'up to date'}")
