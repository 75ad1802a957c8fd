"""Audio I/O: bit-exact PCM round trips against soundfile's own integer reads, lossy OGG within tolerance,
resampling equal to torchaudio and keeping a sine's frequency, clear errors for broken files."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from restore.io import (
    AUDIO_SUFFIXES,
    AudioInfo,
    AudioReadError,
    audio_info,
    audio_suffixes,
    list_audio,
    read_audio,
    resample,
    write_audio,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RATES = [8000, 16000, 44100, 48000]

pytestmark = pytest.mark.usefixtures("one_thread")


def grid_audio(channels: int, frames: int, bits: int = 16, seed: int = 0) -> torch.Tensor:
    """Random values on the ``bits`` PCM grid k / 2**(bits-1), including both extremes."""
    full = 2 ** (bits - 1)
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(-full, full, (channels, frames), generator=g, dtype=torch.int64)
    levels[0, :2] = torch.tensor([-full, full - 1])
    return (levels.double() / full).float()


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5, channels: int = 1) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    rows = [amplitude * torch.sin(2 * torch.pi * freq * (1 + 0.5 * c) * t) for c in range(channels)]
    return torch.stack(rows).float()


# --------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    "suffix, subtype", [(".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "FLOAT"), (".flac", "PCM_16"),
                        (".flac", "PCM_24")]
)
def test_lossless_round_trip_is_bit_exact_on_the_pcm16_grid(tmp_path, suffix, subtype, channels, rate):
    audio = grid_audio(channels, 3001, seed=rate + channels)
    path = write_audio(tmp_path / f"x{suffix}", audio, rate, subtype=subtype)
    info = audio_info(path)
    assert info == AudioInfo(rate, channels, 3001, subtype, suffix[1:].upper())
    back, back_rate = read_audio(path)
    assert back_rate == rate and back.dtype == torch.float32 and back.shape == (channels, 3001)
    assert torch.equal(back, audio)
    # the reference: soundfile's own float32 read of the same file
    reference, _ = soundfile.read(path, dtype="float32", always_2d=True)
    assert torch.equal(back, torch.from_numpy(reference.T.copy()))
    if subtype == "PCM_16":  # and its integer read holds exactly round(x * 32768)
        ints, _ = soundfile.read(path, dtype="int16", always_2d=True)
        assert np.array_equal(ints.T, (audio.double() * 32768).round().numpy().astype(np.int16))


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_pcm24_round_trip_is_bit_exact_on_its_own_grid(tmp_path, suffix):
    audio = grid_audio(2, 2000, bits=24, seed=3)
    back, _ = read_audio(write_audio(tmp_path / f"x{suffix}", audio, 48000, subtype="PCM_24"))
    assert torch.equal(back, audio)
    back16, _ = read_audio(write_audio(tmp_path / f"y{suffix}", audio, 48000))  # default PCM_16: rounded
    expected = ((audio.double() * 32768).round().clamp(-32768, 32767) / 32768).float()  # 1 - 2**-23 saturates
    assert torch.equal(back16, expected)
    assert audio_info(tmp_path / f"y{suffix}").subtype == "PCM_16"


def test_float_wav_keeps_values_and_pcm_clips(tmp_path):
    audio = torch.tensor([[0.25, -1.5, 1.5, 0.123456789, 2.0**-20]])
    back, _ = read_audio(write_audio(tmp_path / "f.wav", audio, 16000, subtype="FLOAT"))
    assert torch.equal(back, audio)  # float files are not clipped
    back, _ = read_audio(write_audio(tmp_path / "i.wav", audio, 16000))
    expected = torch.tensor([[0.25, -1.0, 32767 / 32768, round(0.123456789 * 32768) / 32768, 0.0]])
    assert torch.equal(back, expected)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_ogg_vorbis_round_trip_within_lossy_tolerance(tmp_path, rate, channels):
    audio = sine(440.0, rate, 0.5, channels=channels)
    path = write_audio(tmp_path / "x.ogg", audio, rate)
    info = audio_info(path)
    assert (info.format, info.subtype, info.sample_rate, info.channels) == ("OGG", "VORBIS", rate, channels)
    back, back_rate = read_audio(path)
    assert back_rate == rate and back.shape == audio.shape
    error = (back - audio).square().mean().sqrt() / audio.square().mean().sqrt()
    assert error < 0.05  # better than 26 dB SNR


def test_write_accepts_numpy_1d_and_batch_of_one_and_creates_folders(tmp_path):
    mono = grid_audio(1, 500)
    write_audio(tmp_path / "a" / "b" / "one.wav", mono[0].numpy(), 8000)
    back, _ = read_audio(tmp_path / "a" / "b" / "one.wav")
    assert torch.equal(back, mono)
    write_audio(tmp_path / "batch.flac", mono[None].double(), 8000)
    assert torch.equal(read_audio(tmp_path / "batch.flac")[0], mono)


def test_write_with_explicit_format_to_a_temporary_name(tmp_path):
    audio = grid_audio(2, 700)
    path = write_audio(tmp_path / "x.wav.partial-tmp", audio, 22050, format="WAV")
    assert path.name == "x.wav.partial-tmp"
    info = audio_info(path)
    assert (info.format, info.subtype, info.sample_rate) == ("WAV", "PCM_16", 22050)
    assert torch.equal(read_audio(path)[0], audio)
    write_audio(tmp_path / "y.tmp", audio, 22050, format="flac")
    assert audio_info(tmp_path / "y.tmp").format == "FLAC"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav.partial-tmp", "y.tmp"]  # no temp left


@pytest.mark.parametrize(
    "audio, rate, kwargs, message",
    [
        (torch.zeros(2, 3, 100), 16000, {}, "must be \\(C, T\\)"),
        (torch.zeros(16000, 2), 16000, {}, "16000 channels"),
        (torch.tensor([[0.0, float("nan")]]), 16000, {}, "NaN or infinite"),
        (torch.tensor([[0.0, float("inf")]]), 16000, {}, "NaN or infinite"),
        (torch.zeros(1, 10), 0, {}, "sample_rate"),
        (torch.zeros(1, 10), 16000.5, {}, "sample_rate"),
        (torch.zeros(1, 0), 16000, {}, "no samples"),
        (torch.zeros(1, 10, dtype=torch.int16), 16000, {}, "floating-point"),
        (torch.zeros(1, 10), 16000, {"subtype": "VORBIS"}, "not valid for format 'WAV'"),
        (torch.zeros(1, 10), 16000, {"format": "NOPE"}, "unknown or unavailable audio format"),
    ],
)
def test_write_validates_arguments(tmp_path, audio, rate, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_audio(tmp_path / "x.wav", audio, rate, **kwargs)
    assert not any(tmp_path.iterdir())


def test_write_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        write_audio(tmp_path / "x.xyz", torch.zeros(1, 10), 16000)


# --------------------------------------------------------------------------------------- reading options


def test_read_resamples_like_torchaudio_and_mixes_down(tmp_path):
    import torchaudio.functional

    audio = sine(440.0, 44100, 0.3, channels=2)
    path = write_audio(tmp_path / "x.wav", audio, 44100, subtype="FLOAT")
    resampled, rate = read_audio(path, sample_rate=16000)
    assert rate == 16000
    torch.testing.assert_close(resampled, torchaudio.functional.resample(audio, 44100, 16000), rtol=0, atol=0)
    mono, rate = read_audio(path, mono=True)
    assert rate == 44100 and mono.shape == (1, audio.shape[1])
    torch.testing.assert_close(mono, audio.mean(0, keepdim=True))
    both, _ = read_audio(path, sample_rate=16000, mono=True)
    expected = torchaudio.functional.resample(audio.mean(0, keepdim=True), 44100, 16000)
    torch.testing.assert_close(both, expected)


@pytest.mark.parametrize("orig, new", [(44100, 16000), (16000, 48000), (8000, 16000), (48000, 44100)])
def test_resample_equals_torchaudio_and_keeps_a_sine_frequency(orig, new):
    import torchaudio.functional

    x = sine(1000.0, orig, 0.5)
    y = resample(x, orig, new)
    assert y.dtype == torch.float32 and y.shape[-1] == -(-x.shape[-1] * new // orig)
    assert torch.equal(y, torchaudio.functional.resample(x, orig, new))
    middle = y[0, y.shape[-1] // 8 : -y.shape[-1] // 8].double()
    spectrum = torch.fft.rfft(middle * torch.hann_window(middle.numel(), dtype=torch.float64)).abs()
    peak_hz = float(spectrum.argmax()) * new / middle.numel()
    assert abs(peak_hz - 1000.0) <= new / middle.numel()  # within one bin
    assert abs(float(middle.abs().max()) - 0.5) < 0.01  # amplitude kept


def test_resample_is_identity_for_equal_rates_float32_under_autocast_and_batched():
    x = torch.randn(3, 2, 400)
    assert resample(x, 16000, 16000) is x
    assert resample(x.double(), 16000, 16000).dtype == torch.float32
    reference = resample(x, 16000, 8000)
    assert reference.shape == (3, 2, 200)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = resample(x.bfloat16(), 16000, 8000)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, resample(x.bfloat16().float(), 16000, 8000))
    for bad in (0, -16000, 16000.5, True, "16k"):
        with pytest.raises(ValueError, match="orig_rate"):
            resample(x, bad, 8000)


# --------------------------------------------------------------------------------------- broken files


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    good = write_audio(folder / "good.wav", grid_audio(2, 16000), 16000)
    data = good.read_bytes()
    files = {
        "corrupt": folder / "noise_bytes.wav",
        "truncated": folder / "cut_short.wav",
        "empty": folder / "empty.wav",
        "zero_frames": folder / "zero_frames.wav",
        "no_data_chunk": folder / "header_only.wav",
        "flac_truncated": folder / "cut_short.flac",
        "ogg_truncated": folder / "cut_short.ogg",
    }
    files["corrupt"].write_bytes(np.random.default_rng(0).bytes(5000))
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    soundfile.write(files["zero_frames"], np.zeros((0, 1), np.float32), 16000)
    files["no_data_chunk"].write_bytes(data[:30])
    flac = write_audio(folder / "good.flac", grid_audio(2, 16000), 16000).read_bytes()
    files["flac_truncated"].write_bytes(flac[: len(flac) // 2])
    ogg = write_audio(folder / "good.ogg", sine(440.0, 16000, 1.0), 16000).read_bytes()
    files["ogg_truncated"].write_bytes(ogg[: len(ogg) // 2])
    files["folder"] = folder / "a_folder.wav"
    files["folder"].mkdir()
    files["missing"] = folder / "missing.wav"
    return files


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("corrupt", "not a recognised audio file"),
        ("truncated", "truncated file: the header declares 16000 frames but only 7994 are present"),
        ("empty", "empty file"),
        ("zero_frames", "zero frames"),
        ("no_data_chunk", "corrupt or truncated audio data"),
        ("flac_truncated", "corrupt or truncated audio data"),
        ("ogg_truncated", "zero frames|corrupt or truncated audio data"),  # depends on where the cut falls
        ("folder", "is a folder"),
        ("missing", "file not found"),
    ],
)
def test_broken_files_raise_audio_read_error_naming_the_file(broken, kind, reason):
    path = broken[kind]
    with pytest.raises(AudioReadError) as caught:
        read_audio(path)
    error = caught.value
    assert isinstance(error, OSError)
    assert error.path == str(path) and re.search(reason, error.reason)
    assert path.name in str(error) and re.search(reason, str(error))
    if not kind.endswith("_truncated"):  # a truncated FLAC/OGG header is intact: decoding finds the damage
        with pytest.raises(AudioReadError, match=reason.split(":")[0]):
            audio_info(path)
    restored = pickle.loads(pickle.dumps(error))
    assert (type(restored), restored.path, restored.reason) == (AudioReadError, error.path, error.reason)


def test_soundfile_alone_reads_a_truncated_wav_silently(broken):
    """Why read_audio checks the RIFF header: libsndfile returns the frames present without an error."""
    data, rate = soundfile.read(broken["truncated"], dtype="float32", always_2d=True)
    assert data.shape == (7994, 2) and rate == 16000
    assert soundfile.info(broken["truncated"]).frames == 7994


def test_real_files_read_when_present():
    folder = SHARED_DATA / "audio" / "librosa_examples"
    if not folder.is_dir():
        pytest.skip(f"shared data not found: {folder}")
    files = [p for p in list_audio(folder) if p.name.startswith("198-209-0000")]
    assert len(files) == 2
    for path in files:
        info = audio_info(path)
        audio, rate = read_audio(path, sample_rate=16000, mono=True)
        assert info.format == "OGG" and rate == 16000 and audio.shape[0] == 1
        assert abs(audio.shape[1] - info.frames * 16000 / info.sample_rate) <= 1
        assert torch.isfinite(audio).all() and 0 < audio.abs().max() <= 1


# --------------------------------------------------------------------------------------- listing, imports


def test_list_audio_sorted_recursive_hidden_skipped(tmp_path):
    tone = sine(440.0, 8000, 0.05)
    for name in ["b.wav", "a.FLAC", "sub/c.ogg", ".hidden/d.wav", "sub/.e.wav", "notes.txt", "f.wav.tmp"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.lower().endswith((".wav", ".flac", ".ogg")):
            fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[path.suffix.lower()]
            write_audio(path, tone, 8000, format=fmt)
        else:
            path.write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_audio(tmp_path)]
    assert found == ["a.FLAC", "b.wav", "sub/c.ogg"]
    assert [p.name for p in list_audio(tmp_path, recursive=False)] == ["a.FLAC", "b.wav"]
    with pytest.raises(FileNotFoundError, match="not found"):
        list_audio(tmp_path / "nope")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        list_audio(tmp_path / "b.wav")


def test_suffixes_follow_libsndfile():
    assert AUDIO_SUFFIXES == (".wav", ".flac", ".ogg")
    has_mp3 = "MP3" in soundfile.available_formats()
    assert audio_suffixes() == AUDIO_SUFFIXES + ((".mp3",) if has_mp3 else ())


def test_mp3_round_trip_when_libsndfile_has_it(tmp_path):
    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    audio = sine(440.0, 44100, 0.5)
    path = write_audio(tmp_path / "x.mp3", audio, 44100)
    assert path in list_audio(tmp_path)
    back, rate = read_audio(path)
    assert rate == 44100 and back.shape == audio.shape
    assert (back - audio).square().mean().sqrt() / audio.square().mean().sqrt() < 0.05


def test_importing_restore_io_does_not_import_soundfile_or_torchaudio():
    code = "import sys, restore.io; print([m for m in ('soundfile', 'torchaudio') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
