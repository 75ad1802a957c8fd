"""``restore.enhance``: every input kind round-trips, rates and channels, chunking, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

import restore
from restore.models.registry import ModelSpec, attach_spec


class Identity(nn.Module):
    """An audio "model" that returns its input: round trips must then be exact (up to rounding)."""

    sample_rate = 16000

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def identity_model(rate: int = 16000) -> nn.Module:
    model = Identity()
    model.sample_rate = rate
    spec = ModelSpec(
        name="identity_audio",
        cls=Identity,
        task="audio",
        in_channels=1,
        out_channels=1,
        inputs=("audio",),
        receptive_field=1,
    )
    return attach_spec(model, spec)


def sine(freq: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    waves = [amplitude * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(waves, axis=-1).astype(np.float32) if channels > 1 else waves[0].astype(np.float32)


def test_numpy_float_mono_and_stereo_keep_shape_dtype_and_values():
    model = identity_model()
    mono = sine(440, 0.5, 16000)
    out = restore.enhance(mono, 16000, model=model)
    assert out.shape == mono.shape and out.dtype == np.float32
    assert np.abs(out - mono).max() < 1e-6
    stereo = sine(300, 0.5, 16000, channels=2).astype(np.float64)
    out = restore.enhance(stereo, 16000, model=model)
    assert out.shape == stereo.shape and out.dtype == np.float64
    assert np.abs(out - stereo).max() < 1e-6


def test_int16_pcm_round_trips_exactly():
    pcm = (sine(440, 0.5, 16000) * 32767).round().astype(np.int16)
    out = restore.enhance(pcm, 16000, model=identity_model())
    assert out.dtype == np.int16 and np.array_equal(out, pcm)


@pytest.mark.parametrize("shape", [(8000,), (2, 8000), (3, 1, 8000)])
def test_tensors_keep_their_shape_and_dtype(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) - 0.5
    out = restore.enhance(x, 16000, model=identity_model())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out - x).abs().max() < 1e-6
    half = restore.enhance(x.to(torch.bfloat16), 16000, model=identity_model())
    assert half.dtype == torch.bfloat16


def test_a_path_gives_a_numpy_array_and_output_keeps_the_subtype(tmp_path):
    stereo = sine(500, 0.4, 16000, channels=2)
    src = tmp_path / "in.wav"
    sf.write(src, stereo, 16000, subtype="PCM_24")
    reference, _ = sf.read(src, dtype="float32")
    out = restore.enhance(src, model=identity_model())
    assert out.shape == stereo.shape and out.dtype == np.float32
    assert np.abs(out - reference).max() < 1e-6
    written = restore.enhance(str(src), model=identity_model(), output=tmp_path / "out.wav")
    assert written == tmp_path / "out.wav"
    info = sf.info(written)
    assert (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_24", 16000, 2, len(stereo))
    back, _ = sf.read(written, dtype="float32")
    assert np.abs(back - reference).max() < 2e-7 * 2**8  # one PCM_24 step


def test_other_rates_are_resampled_in_and_back_out():
    x = sine(1000, 1.0, 48000)
    out = restore.enhance(x, 48000, model=identity_model())
    assert out.shape == x.shape
    interior = slice(2000, -2000)
    assert np.abs(out[interior] - x[interior]).max() < 5e-3  # 48k -> 16k -> 48k keeps a 1 kHz tone


def test_bandwidth_extension_returns_the_model_rate():
    x = torch.from_numpy(sine(500, 0.5, 8000))
    out = restore.enhance(x, 8000, task="bandwidth", model=identity_model())
    assert out.shape == (8000,)  # 0.5 s at 16 kHz


def test_chunked_processing_equals_one_pass_for_the_identity():
    x = torch.from_numpy(sine(200, 3.0, 16000))
    chunked = restore.enhance(x, 16000, model=identity_model(), chunk_seconds=0.25)
    assert (chunked - x).abs().max() < 1e-6


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda m: restore.enhance(np.zeros(100, np.float32), model=m), "sample_rate is required"),
        (
            lambda m: restore.enhance(np.zeros(100, np.float32), 0, model=m),
            "sample_rate must be a positive int",
        ),
        (lambda m: restore.enhance(np.zeros(100, np.int8), 16000, model=m), "float, int16 or int32"),
        (
            lambda m: restore.enhance(np.zeros((2, 2, 100), np.float32), 16000, model=m),
            r"\(samples, channels\)",
        ),
        (lambda m: restore.enhance(np.zeros(0, np.float32), 16000, model=m), "is empty"),
        (lambda m: restore.enhance(np.full(10, np.nan, np.float32), 16000, model=m), "NaN or infinite"),
        (lambda m: restore.enhance(torch.zeros(10, dtype=torch.int16), 16000, model=m), "must be float"),
        (lambda m: restore.enhance([0.0, 1.0], 16000, model=m), "must be a file path, a numpy array"),
        (
            lambda m: restore.enhance(np.zeros(10, np.float32), 16000, task="denoize", model=m),
            "Did you mean 'denoise'",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call(identity_model())


def test_a_file_rate_that_contradicts_sample_rate_is_an_error(tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, sine(440, 0.1, 8000), 8000)
    with pytest.raises(ValueError, match="a.wav: the file is 8000 Hz, but sample_rate=16000"):
        restore.enhance(src, 16000, model=identity_model())


def test_an_image_model_is_refused_for_audio():
    with pytest.raises(ValueError, match="'sr-x4' is for task 'sr'"):
        restore.enhance(np.zeros(100, np.float32), 16000, model="sr-x4")


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """Harmonics of a moving pitch with syllable envelopes (a stand-in for speech)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / rate
    voice = sum(torch.sin(k * phase) / k for k in range(1, 20))
    envelope = torch.sin(math.pi * 3 * t).clamp_min(0) ** 2
    return (0.2 * voice * envelope + 0.0 * torch.rand(1, generator=g))[None]


def test_the_default_denoiser_improves_si_sdr_and_chunking_does_not_change_it():
    from restore import metrics

    clean = speech_like(4.0)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    noise = noise * clean.square().mean().sqrt() / noise.square().mean().sqrt() / math.sqrt(10 ** (5 / 10))
    noisy = clean + noise  # 5 dB SNR
    whole = restore.enhance(noisy, 16000, chunk_seconds=60)
    chunked = restore.enhance(noisy, 16000, chunk_seconds=1.0)
    gain = float(metrics.si_sdr(whole[None], clean[None])[0] - metrics.si_sdr(noisy[None], clean[None])[0])
    assert gain > 3.0, gain
    # the context covers the model's memory: chunked output is the same signal within -40 dB
    error = (chunked - whole).square().mean() / whole.square().mean()
    assert 10 * math.log10(float(error) + 1e-20) < -40


VOICEBANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio" / "VoiceBank_DEMAND_debug"


@pytest.mark.skipif(not VOICEBANK.is_dir(), reason="needs ../shared/data/audio/VoiceBank_DEMAND_debug")
def test_the_bundled_bandwidth_model_restores_the_missing_band_of_real_speech():
    from restore import metrics
    from restore.io.audio import read_audio, resample

    clean, rate = read_audio(VOICEBANK / "clean" / "p287_002.wav")
    narrow = resample(clean, rate, 8000)  # telephone-band speech
    wide = restore.enhance(narrow, 8000, task="bandwidth")  # 16 kHz out
    baseline = resample(narrow, 8000, 16000)
    n = min(wide.shape[-1], clean.shape[-1])
    lsd_in = float(metrics.lsd(baseline[..., :n], clean[..., :n], 16000)[0])
    lsd_out = float(metrics.lsd(wide[..., :n], clean[..., :n], 16000)[0])
    assert lsd_out < 0.5 * lsd_in, (lsd_in, lsd_out)
