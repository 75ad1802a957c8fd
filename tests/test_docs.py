"""The code in docs/losses.md works as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import losses
from losses import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "losses.md"


def _python_block_after(heading: str) -> str:
    text = DOC.read_text().split(heading, 1)[1]
    return text.split("```python", 1)[1].split("```", 1)[0]


def test_adding_an_entry_example_registers_a_working_loss():
    namespace: dict = {}
    exec(compile(_python_block_after("## Adding an entry"), str(DOC), "exec"), namespace)
    try:
        spec = losses.get("log_cosh")
        assert (spec.kind, spec.fp32, spec.optional_inputs) == ("pixel", True, ("weight",))
        gen = torch.Generator().manual_seed(0)
        pred, target = torch.randn(2, 2, 3, 8, 8, generator=gen)
        total, terms = losses.build({"log_cosh": 1.0, "l1": 0.5})(pred, target)
        expected = torch.log(torch.cosh(pred - target)).mean()
        assert float(terms["log_cosh"]) == pytest.approx(float(expected), rel=1e-5)
        assert "log(cosh(pred - target))" in losses.describe("log_cosh")
    finally:
        registry._REGISTRY.pop("log_cosh", None)
