"""restore.models.save / load: our safetensors round trip, published formats via spandrel, safety."""

from __future__ import annotations

import pathlib

import pytest
import torch
from safetensors.torch import save_file

import restore.models as models
from restore.models import WeightsFormatError


def outputs_equal(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=1e-6)


def test_safetensors_round_trip_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    net = models.build("edsr_tiny", scale=3, num_block=2)
    path = models.save(net, tmp_path / "sub" / "edsr.safetensors", metadata={"note": "x"})
    loaded = models.load(path)
    assert type(loaded) is type(net)
    assert loaded.spec == net.spec and loaded.config == net.config
    assert loaded.spec.scale == 3 and not loaded.training
    outputs_equal(net, loaded, torch.rand(1, 3, 9, 7))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["edsr.safetensors"]  # no temp file left


def test_published_pth_with_params_ema_loads_into_our_rrdbnet(tmp_path):
    # Real-ESRGAN / BasicSR releases nest the weights under "params_ema".
    torch.manual_seed(0)
    net = models.build("rrdbnet_small", scale=2, num_block=2)
    path = tmp_path / "RealESRGAN_x2_small.pth"
    torch.save({"params_ema": net.state_dict(), "params": {}}, path)
    loaded = models.load(path)
    assert type(loaded) is type(net) and loaded.spec.name == "rrdbnet"
    assert loaded.spec.scale == 2 and loaded.spec.size_multiple == 2 and loaded.spec.task == "sr"
    assert loaded.config["num_feat"] == 32 and loaded.config["num_block"] == 2
    outputs_equal(net, loaded, torch.rand(1, 3, 8, 12))


@pytest.mark.parametrize(
    ("name", "overrides", "registered"),
    [
        ("compact_tiny", {"scale": 2}, "compact"),
        ("swinir_tiny", {"scale": 3}, "swinir_light"),
        ("nafnet_small", {}, "nafnet"),
    ],
)
def test_spandrel_detected_weights_of_our_architectures_load_into_ours(tmp_path, name, overrides, registered):
    torch.manual_seed(0)
    net = models.build(name, **overrides).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), path)
    loaded = models.load(path)
    assert type(loaded) is type(net) and loaded.spec.name == registered
    for key in ("scale", "num_feat", "num_conv", "embed_dim", "depths", "width", "enc_blk_nums"):
        if key in net.config:
            assert loaded.config[key] == net.config[key], key
    outputs_equal(net, loaded, torch.rand(1, 3, 16, 16))
    resaved = models.load(models.save(loaded, tmp_path / "converted.safetensors"))  # .pth -> ours
    outputs_equal(net, resaved, torch.rand(1, 3, 16, 16))


def test_architectures_we_do_not_implement_come_back_as_spandrel_modules(tmp_path):
    from spandrel.architectures.DnCNN import DnCNN

    torch.manual_seed(0)
    theirs = DnCNN(in_nc=3, out_nc=3, nc=16, nb=4).eval()
    path = tmp_path / "dncnn.pth"
    torch.save(theirs.state_dict(), path)
    loaded = models.load(path)
    assert loaded.spec.name == "spandrel:DnCNN" and loaded.spec.scale == 1 and loaded.spec.in_channels == 3
    outputs_equal(theirs, loaded, torch.rand(1, 3, 16, 16))
    with pytest.raises(TypeError, match="only models made by restore.models.build"):
        models.save(loaded, tmp_path / "dncnn.safetensors")


def test_third_party_safetensors_without_metadata_goes_through_spandrel(tmp_path):
    torch.manual_seed(0)
    net = models.build("compact_tiny", scale=4)
    path = tmp_path / "realesr-small.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    loaded = models.load(path)
    assert loaded.spec.name == "compact" and loaded.spec.scale == 4
    outputs_equal(net, loaded, torch.rand(1, 3, 10, 10))


class _Payload:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickles_with_code_are_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, path)
    with pytest.raises(WeightsFormatError, match=r"evil\.pth: refusing to unpickle"):
        models.load(path)
    assert not marker.exists()


def test_bad_files_give_errors_that_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        models.load(tmp_path / "missing.pth")
    odd = tmp_path / "weights.onnx"
    odd.write_bytes(b"\0" * 16)
    with pytest.raises(WeightsFormatError, match=r"weights\.onnx: unsupported weights suffix '\.onnx'"):
        models.load(odd)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsFormatError, match=r"broken\.safetensors: not a readable safetensors file"):
        models.load(broken)
    truncated = tmp_path / "truncated.pth"
    torch.save(models.build("compact_tiny").state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(WeightsFormatError, match=r"truncated\.pth: not a readable PyTorch file"):
        models.load(truncated)
    unknown = tmp_path / "unknown.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, unknown)
    with pytest.raises(WeightsFormatError, match=r"unknown\.pth: no known architecture matches"):
        models.load(unknown)


def test_metadata_and_weights_that_disagree_are_reported(tmp_path):
    net = models.build("edsr_tiny", num_block=2)
    path = tmp_path / "mixed.safetensors"
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"restore.model": "edsr_tiny", "restore.config": '{"num_block": 3}'})
    with pytest.raises(WeightsFormatError, match=r"mixed\.safetensors: weights do not fit model 'edsr_tiny'"):
        models.load(path)
    save_file(state, str(path), metadata={"restore.model": "edsr_tinyy"})
    with pytest.raises(WeightsFormatError, match="Did you mean 'edsr_tiny'"):
        models.load(path)


def test_only_registered_models_can_be_saved(tmp_path):
    with pytest.raises(TypeError, match="only models made by restore.models.build"):
        models.save(torch.nn.Conv2d(3, 3, 3), tmp_path / "conv.safetensors")
    with pytest.raises(ValueError, match=r"saved as \.safetensors"):
        models.save(models.build("compact_tiny"), tmp_path / "net.pth")


def test_big_lama_weights_detected_by_spandrel_load_into_our_lama():
    from spandrel import ModelLoader

    from restore.models.loading import _as_ours

    torch.manual_seed(0)
    net = models.build("lama").eval()
    state = net.state_dict()
    ours = _as_ours(ModelLoader().load_from_state_dict(state), state)
    assert type(ours) is type(net) and ours.spec.name == "lama" and ours.spec.inputs == ("image", "mask")
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 8:24] = 1
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(image, mask), net(image, mask), rtol=0, atol=1e-6)
