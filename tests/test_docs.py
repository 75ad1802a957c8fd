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


MODELS_DOC = DOC.parent / "models.md"


def test_adding_an_architecture_example_registers_a_working_model():
    import restore.models as models
    from restore.models import registry as model_registry

    models.available()  # built-ins first, so the example is added to a loaded registry
    text = MODELS_DOC.read_text().split("## Adding an architecture", 1)[1]
    code = text.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, str(MODELS_DOC), "exec"), {})
    try:
        net = models.build("tiny_sr", scale=3)
        assert net.spec.scale == 3 and net.spec.summary.startswith("Two convs and a pixel shuffle")
        assert net(torch.rand(1, 3, 5, 7)).shape == (1, 3, 15, 21)
    finally:
        model_registry._REGISTRY.pop("tiny_sr", None)


def test_models_doc_table_is_generated_from_the_registry():
    from restore.models import table as model_table

    block = MODELS_DOC.read_text().split(model_table.START, 1)[1].split(model_table.END, 1)[0].strip()
    assert block == model_table.markdown_table(), (
        "docs/models.md table is stale: run `python -m restore.models.table docs/models.md`"
    )


def test_data_doc_example_makes_reproducible_pairs():
    doc = DOC.parent / "data.md"
    code = doc.read_text().split("```python", 1)[1].split("```", 1)[0]
    first: dict = {}
    exec(compile(code, str(doc), "exec"), first)
    assert first["hr"].shape == (4, 3, 64, 64)
    assert first["lq"].shape == first["lq_bicubic"].shape == (4, 3, 16, 16)
    coverage = first["masks"].mean(dim=(1, 2, 3))
    assert ((coverage >= 0.1) & (coverage <= 0.4)).all()
    second: dict = {}
    exec(compile(code, str(doc), "exec"), second)
    for name in ("hr", "lq", "masks"):
        assert torch.equal(first[name], second[name]), name
