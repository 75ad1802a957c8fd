"""The registry as a table: plain text for the terminal, markdown for README.md.

``python -m losses.table README.md`` rewrites the block between the ``losses-table`` markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def text_table(entries: list[LossSpec]) -> str:
    """Aligned plain-text table, one entry per line."""
    header = [c.replace("_", "-") for c in COLUMNS]
    body = [[_cell(s.row()[c]) for c in COLUMNS] for s in entries]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(entries: list[LossSpec] | None = None) -> str:
    """Markdown table of every entry with its summary line."""
    entries = specs() if entries is None else entries
    columns = (*COLUMNS, "summary")
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |", "|" + "---|" * len(columns)]
    for s in entries:
        row = s.row()
        cells = [f"`{row['name']}`"] + [_cell(row[c]).replace("|", "\\|") for c in columns[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_block(path: Path) -> bool:
    """Rewrite the table between the markers in ``path``; True when the file changed."""
    text = path.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{path}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{markdown_table()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["README.md"]:
        print(f"{arg}: {'updated' if update_block(Path(arg)) else 'up to date'}")
