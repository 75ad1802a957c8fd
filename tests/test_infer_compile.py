"""``compile=True``: the Predictor, ``restore.upscale`` and ``restore upscale --compile`` run the model
through ``torch.compile`` (Inductor, weights frozen) with the eager results, and fall back to eager
with a warning where compilation fails.

Each compilation of the tiny network takes seconds, so the cases share compiled graphs: one
Predictor per precision, reused across the checks of a test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch._dynamo
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters

import restore
import restore.models as models
from restore import api
from restore.cli import main
from restore.infer import Predictor
from restore.io.quantise import QuantisedImage

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Compiled graphs of one test do not serve the next (a graph is cached on the code object)."""
    torch._dynamo.reset()
    api._predictors.clear()
    yield
    torch._dynamo.reset()
    api._predictors.clear()


def network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build("compact_tiny").eval()


def photo(h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_predictor_gives_the_eager_output_tiled_and_written(precision):
    x = photo(70, 90)
    eager = Predictor(network(), device="cpu", precision=precision, tile=48)
    compiled = Predictor(network(), device="cpu", precision=precision, tile=48, compile=True)
    assert "compile=True" in repr(compiled)
    expected = eager(x)
    before = graphs()
    out = compiled(x)
    assert compiled.last_tile == 48 and compiled.compile  # tiled, and still compiled
    assert graphs() > before  # a graph was compiled, not an eager run under another name
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6 if precision == "fp32" else 2e-3)

    # written tile by tile into an 8-bit image (features interleaved for HWC strips): same pixels
    images = []
    for predictor in (eager, compiled):
        image = QuantisedImage(280, 360, bit_depth=8, gray=False, alpha=False)
        assert predictor(x, write=image.write) is None
        images.append(image.pixels)
    levels = (images[0].int() - images[1].int()).abs().max().item()
    assert levels <= (0 if precision == "fp32" else 1), levels


def test_upscale_compile_keyword_matches_eager_and_is_cached_apart():
    net = network()
    image = (photo(40, 52).permute(0, 2, 3, 1)[0].numpy() * 255).round().astype(np.uint8)
    expected = restore.upscale(image, model=net, device="cpu", precision="fp32")
    out = restore.upscale(image, model=net, device="cpu", precision="fp32", compile=True)
    assert out.dtype == np.uint8 and out.shape == (160, 208, 3)
    np.testing.assert_array_equal(out, expected)
    eager = api.get_predictor(net, task="sr", scale=4, device="cpu", precision="fp32")
    compiled = api.get_predictor(net, task="sr", scale=4, device="cpu", precision="fp32", compile=True)
    assert compiled is not eager and compiled.compile and not eager.compile


def test_compile_failure_warns_once_and_runs_eagerly():
    x = photo(30, 26)
    expected = Predictor(network(), device="cpu", precision="fp32")(x)
    predictor = Predictor(network(), device="cpu", precision="fp32", compile=True)
    # no C++ compiler for Inductor's CPU kernels (and no cached kernels to hide that)
    no_compiler = {"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}
    warning = r"compact_tiny.*torch\.compile failed \(InvalidCxxCompiler: No working C\+\+"
    with inductor_config.patch(no_compiler), pytest.warns(UserWarning, match=warning):
        out = predictor(x)
    assert not predictor.compile
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: it runs eagerly from then on
        torch.testing.assert_close(predictor(x), expected, rtol=0, atol=0)


def test_compile_must_be_a_bool():
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        Predictor(network(), device="cpu", compile="yes")


def test_command_compile_flag_reaches_the_predictor(tmp_path, monkeypatch):
    made = []
    get_predictor = api.get_predictor

    def spy(*args, **kwargs):
        predictor = get_predictor(*args, **kwargs)
        made.append(predictor)
        return predictor

    monkeypatch.setattr(api, "get_predictor", spy)
    weights = models.save(network(), tmp_path / "tiny.safetensors")
    source = tmp_path / "in.png"
    pixels = (photo(20, 24).permute(0, 2, 3, 1)[0].numpy() * 255).round().astype(np.uint8)
    from PIL import Image

    Image.fromarray(pixels).save(source)
    for flag, name in (([], "eager.png"), (["--compile"], "compiled.png")):
        args = ["upscale", str(source), str(tmp_path / name), "--model", str(weights), "--device", "cpu"]
        assert main([*args, "--precision", "fp32", "--no-progress", *flag]) == 0
    assert [p.compile for p in made] == [False, True]
    eager = np.asarray(Image.open(tmp_path / "eager.png"))
    compiled = np.asarray(Image.open(tmp_path / "compiled.png"))
    np.testing.assert_array_equal(compiled, eager)
