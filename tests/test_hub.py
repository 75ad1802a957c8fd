"""restore.hub: bundled names, local files, URL downloads pinned by sha256, task/scale checks. Offline."""

from __future__ import annotations

import hashlib
import io
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

import restore.models as models
from restore import hub
from restore.hub import ModelDownloadError

URL = "https://models.example.org/releases/v1/compact_x4.safetensors"
REAL_URLOPEN = urllib.request.urlopen


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may reach the network: only file:// URLs pass; the default cache is a temp folder."""

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if not url.startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {url}")
        return REAL_URLOPEN(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    monkeypatch.setenv("RESTORE_CACHE", str(tmp_path / "default_cache"))
    monkeypatch.delenv("RESTORE_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def compact_file(tmp_path_factory) -> tuple[Path, torch.nn.Module, str]:
    """A compact_tiny x4 saved by restore.models.save, the model, and the file's sha256."""
    torch.manual_seed(0)
    net = models.build("compact_tiny").eval()
    path = models.save(net, tmp_path_factory.mktemp("weights") / "compact_x4.safetensors")
    return path, net, hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def serve(monkeypatch, payload: bytes) -> list[str]:
    """urlopen returns ``payload`` from memory; the list collects the URLs requested."""
    calls: list[str] = []

    def fake_urlopen(request, timeout=None):
        assert timeout is not None and timeout > 0  # never an unbounded wait
        calls.append(request.full_url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return calls


def go_offline(monkeypatch) -> None:
    def no_network(request, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


# -- local files ----------------------------------------------------------------------------------


def test_local_safetensors_loads_our_model_with_equal_outputs(compact_file):
    path, net, _ = compact_file
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    for given in (path, str(path)):
        assert hub.resolve(given, task="sr") == path
        loaded = hub.load_model(given, task="sr", scale=4)
        assert type(loaded) is type(net) and loaded.spec == net.spec and not loaded.training
        assert_same_outputs(net, loaded, x)


def test_pth_state_dict_loads_through_spandrel(tmp_path):
    torch.manual_seed(0)
    net = models.build("compact_tiny", scale=2).eval()
    path = tmp_path / "realesr-compact-x2.pth"
    torch.save(net.state_dict(), path)  # a bare state dict: no restore metadata
    loaded = hub.load_model(path, task="sr", scale=2)
    assert type(loaded) is type(net) and loaded.spec.scale == 2 and loaded.spec.task == "sr"
    assert_same_outputs(net, loaded, torch.rand(1, 3, 9, 11))


def test_missing_or_non_weights_local_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found: .*absent.pth"):
        hub.resolve(str(tmp_path / "absent.pth"), task="sr")
    with pytest.raises(FileNotFoundError, match="absent_dir"):
        hub.resolve(tmp_path / "absent_dir", task="sr")  # a PathLike is always a path
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"not a weights file \(suffix '.txt'\)"):
        hub.resolve(text, task="sr")


# -- URLs -----------------------------------------------------------------------------------------


def test_url_is_downloaded_once_then_served_from_the_cache(monkeypatch, tmp_path, compact_file):
    path, net, sha = compact_file
    calls = serve(monkeypatch, path.read_bytes())
    cache = tmp_path / "cache"
    got = hub.resolve(f"{URL}#sha256={sha}", task="sr", cache_dir=cache)
    assert got == cache / f"{sha[:16]}-compact_x4.safetensors"
    assert calls == [URL]  # the fragment is not sent
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in cache.iterdir()) == [got.name]  # no partial file left

    go_offline(monkeypatch)
    for model, kwargs in [
        (f"{URL}#sha256={sha}", {}),
        ((URL, sha), {}),
        (URL, {"sha256": sha.upper()}),
        (f"{URL}#sha256={sha}", {"allow_download": False}),
    ]:
        assert hub.resolve(model, task="sr", cache_dir=cache, **kwargs) == got
    loaded = hub.load_model(f"{URL}#sha256={sha}", task="sr", scale=4, cache_dir=cache)
    assert_same_outputs(net, loaded, torch.rand(1, 3, 8, 8))


def test_default_cache_folder_comes_from_the_environment(monkeypatch, tmp_path, compact_file):
    path, _, sha = compact_file
    serve(monkeypatch, path.read_bytes())
    monkeypatch.setenv("RESTORE_CACHE", str(tmp_path / "env_cache"))
    got = hub.resolve(f"{URL}#sha256={sha}", task="sr")
    assert got.parent == tmp_path / "env_cache" and got.is_file()
    monkeypatch.delenv("RESTORE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.default_cache_dir() == tmp_path / "xdg" / "restore" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.default_cache_dir() == tmp_path / "home" / ".cache" / "restore" / "models"


def test_file_url_goes_through_urllib(tmp_path, compact_file):
    path, net, sha = compact_file
    loaded = hub.load_model(path.as_uri(), sha256=sha, task="sr", cache_dir=tmp_path / "c")
    assert (tmp_path / "c" / f"{sha[:16]}-compact_x4.safetensors").is_file()
    assert_same_outputs(net, loaded, torch.rand(1, 3, 8, 8))


def test_wrong_sha256_names_both_hashes_and_leaves_nothing(monkeypatch, tmp_path, compact_file):
    path, _, sha = compact_file
    serve(monkeypatch, path.read_bytes())
    wrong = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(ModelDownloadError) as info:
        hub.resolve(f"{URL}#sha256={wrong}", task="sr", cache_dir=cache)
    message = str(info.value)
    assert f"sha256 {sha}, expected {wrong}" in message and URL in message
    assert list(cache.iterdir()) == []


def test_offline_download_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    go_offline(monkeypatch)
    sha = hashlib.sha256(b"weights").hexdigest()
    cache = tmp_path / "cache"
    expected_path = cache / f"{sha[:16]}-compact_x4.safetensors"
    with pytest.raises(ModelDownloadError) as info:
        hub.resolve(f"{URL}#sha256={sha}", task="sr", cache_dir=cache)
    assert isinstance(info.value, OSError) and isinstance(info.value.__cause__, urllib.error.URLError)
    message = str(info.value)
    for part in (URL, str(expected_path), sha, "name resolution"):
        assert part in message
    assert list(cache.iterdir()) == []

    monkeypatch.setenv("RESTORE_OFFLINE", "1")  # downloads off: the same advice, no request
    monkeypatch.setattr(urllib.request, "urlopen", None)
    with pytest.raises(ModelDownloadError, match="downloads are off") as info:
        hub.resolve(f"{URL}#sha256={sha}", task="sr", cache_dir=cache)
    assert str(expected_path) in str(info.value) and sha in str(info.value)

    expected_path.write_bytes(b"weights")  # the file put there by hand is used
    assert hub.resolve(f"{URL}#sha256={sha}", task="sr", cache_dir=cache) == expected_path


def test_urls_need_a_valid_sha256_and_a_weights_file_name():
    with pytest.raises(ValueError, match="needs the sha256"):
        hub.resolve(URL, task="sr")
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        hub.resolve(f"{URL}#sha256=abc", task="sr")
    a, b = "a" * 64, "b" * 64
    with pytest.raises(ValueError, match="conflicting sha256"):
        hub.resolve(f"{URL}#sha256={a}", sha256=b, task="sr")
    with pytest.raises(ValueError, match="must end in one of"):
        hub.resolve(f"https://example.org/download?id=3#sha256={a}", task="sr")
    with pytest.raises(ValueError, match="only for URLs"):
        hub.resolve("sr-x4", sha256=a, task="sr")


# -- bundled names --------------------------------------------------------------------------------


def test_bundled_table_and_defaults():
    names = [m.name for m in hub.bundled()]
    assert names[:2] == ["sr-x4", "sr-x2"] and {"deblur", "inpaint"} <= set(names)
    assert len(set(names)) == len(names)
    assert all(m.file.endswith(".safetensors") for m in hub.BUNDLED if m.architecture is None)
    assert hub.default_model("sr") == "sr-x4" and hub.default_model("sr", 2) == "sr-x2"
    assert hub.default_model("deblur") == "deblur" and hub.default_model("inpaint") == "inpaint"
    # the inpainting default is a trained network; the weight-free filler is built, not loaded
    net = hub.load_model(None, task="inpaint")
    assert net.spec.name == "lama_pushpull_small"
    assert hub.resolve(None, task="inpaint").name == "inpaint.safetensors"
    pushpull = hub.load_model("inpaint-pushpull", task="inpaint")
    assert pushpull.spec.name == "pushpull_inpaint" and hub.get_bundled("inpaint-pushpull").available
    with pytest.raises(ValueError, match="has no weights file"):
        hub.resolve("inpaint-pushpull", task="inpaint")
    # diffusion models serve the task their condition makes them for
    assert hub.get_bundled("diffusion-x4").task == "sr" and hub.get_bundled("diffusion").task == "inpaint"
    assert hub.default_model("sr", 4) == "sr-x4"
    with pytest.raises(ValueError) as info:
        hub.default_model("sr", 3)
    assert str(info.value).startswith(
        "no bundled model for task 'sr' at scale 3; bundled: sr-x4, sr-x2, diffusion-x4; pass model=..."
    )
    with pytest.raises(ValueError, match="Did you mean 'sr'"):
        hub.default_model("srr")


def test_bundled_name_with_missing_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    # files are missing; weight-free entries (built, not loaded) stay available
    assert [m.available for m in hub.bundled()] == [m.architecture is not None for m in hub.BUNDLED]
    for model in ("sr-x4", None):
        with pytest.raises(FileNotFoundError) as info:
            hub.resolve(model, task="sr")
        assert str(tmp_path / "sr_x4.safetensors") in str(info.value) and "incomplete" in str(info.value)


def test_bundled_file_present_is_the_default(monkeypatch, tmp_path, compact_file):
    path, net, _ = compact_file
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    (tmp_path / "sr_x4.safetensors").write_bytes(path.read_bytes())
    assert [m.name for m in hub.bundled() if m.available and m.architecture is None] == ["sr-x4"]
    loaded = hub.load_model(task="sr")
    assert_same_outputs(net, loaded, torch.rand(1, 3, 8, 8))
    assert hub.resolve("sr-x4", task="sr", scale=4) == tmp_path / "sr_x4.safetensors"
    with pytest.raises(ValueError, match="model 'sr-x4' upscales by 4, but scale=2 was asked"):
        hub.resolve("sr-x4", task="sr", scale=2)
    with pytest.raises(ValueError, match="bundled model 'sr-x4' is for task 'sr', but task 'deblur'"):
        hub.resolve("sr-x4", task="deblur")


def test_architecture_names_and_unknown_names_are_explained():
    with pytest.raises(ValueError, match="'rrdbnet' is an architecture without weights; pass a weights file"):
        hub.resolve("rrdbnet", task="sr")
    with pytest.raises(ValueError) as info:
        hub.resolve("sr_x4", task="sr")
    message = str(info.value)
    assert "Did you mean 'sr-x4'" in message and "sr-x2" in message and "URL#sha256=" in message
    with pytest.raises(TypeError, match="got int"):
        hub.resolve(4, task="sr")


# -- task and scale checks ------------------------------------------------------------------------


def test_task_and_scale_mismatches_after_loading(tmp_path, compact_file):
    path, net, _ = compact_file
    with pytest.raises(ValueError, match=re.escape(f"model '{path}' upscales by 4, but scale=2 was asked")):
        hub.load_model(path, task="sr", scale=2)
    with pytest.raises(ValueError, match="is a 'sr' model .*but task 'inpaint' was asked"):
        hub.load_model(path, task="inpaint")
    torch.manual_seed(0)
    deblur = models.save(models.build("nafnet_small", width=8), tmp_path / "nafnet.safetensors")
    with pytest.raises(ValueError, match="is a 'deblur' model .*but task 'sr' was asked"):
        hub.load_model(deblur, task="sr", scale=4)
    # Scale-1 image-to-image models serve deblurring and denoising alike.
    assert hub.load_model(deblur, task="denoise", scale=1).spec.task == "deblur"


def test_a_built_module_is_checked_and_returned_as_is(compact_file):
    _, net, _ = compact_file
    assert hub.load_model(net, task="sr", scale=4) is net
    with pytest.raises(ValueError, match="upscales by 4, but scale=3"):
        hub.load_model(net, task="sr", scale=3)
    with pytest.raises(TypeError, match="no restore ModelSpec"):
        hub.load_model(torch.nn.Conv2d(3, 3, 3), task="sr")
