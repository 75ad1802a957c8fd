"""Audio data: the synthetic speech has speech's level, pitch range and formants; the noise clips are what
they say; SpeechNoiseDataset crops are real, reproducible, epoch-dependent and worker-independent; bad
files are skipped with a warning; PairedAudioFolder reads the VoiceBank pairs and rejects mismatches."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch
from torch.utils.data import DataLoader

from restore.data import (
    PairedAudioFolder,
    SpeechNoiseDataset,
    sample_noise_clips,
    sample_speech_clips,
    synthesize_speech,
    synthetic_speech,
)
from restore.data.sample_audio import NOISE_KINDS, VOWELS
from restore.io import AudioReadError, write_audio

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOICEBANK = SHARED_DATA / "audio" / "VoiceBank_DEMAND_debug"
RATE = 16000

pytestmark = pytest.mark.usefixtures("one_thread")


def rms_db(x: torch.Tensor) -> float:
    return 20 * math.log10(float(x.double().square().mean().sqrt()))


def autocorrelation_pitch(frame: np.ndarray, rate: int) -> float:
    """Pitch of a frame from the highest autocorrelation peak between 60 and 400 Hz."""
    frame = frame - frame.mean()
    r = np.correlate(frame, frame, "full")[len(frame) - 1 :]
    low, high = int(rate / 400), int(rate / 60)
    return rate / (low + int(np.argmax(r[low:high])))


def lpc_resonances(frame: np.ndarray, rate: int, order: int = 14) -> np.ndarray:
    """Frequencies (Hz) of the LPC poles with bandwidth < 400 Hz: the spectral envelope's peaks."""
    x = np.append(frame[0], frame[1:] - 0.97 * frame[:-1]) * np.hamming(len(frame))
    r = np.correlate(x, x, "full")[len(x) - 1 : len(x) + order]
    a = scipy.linalg.solve_toeplitz(r[:order], -r[1 : order + 1])
    roots = np.roots(np.r_[1.0, a])
    roots = roots[np.imag(roots) > 0]
    freqs = np.angle(roots) * rate / (2 * np.pi)
    bandwidths = -np.log(np.abs(roots)) * rate / np.pi
    return np.sort(freqs[(bandwidths < 400) & (freqs > 150)])


def vowel_middles(voiced: torch.Tensor, min_samples: int) -> list[int]:
    v = np.r_[0, voiced.numpy().astype(int), 0]
    edges = np.flatnonzero(np.diff(v))
    return [(s + e) // 2 for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s >= min_samples]


# --------------------------------------------------------------------------------------- synthetic speech


@pytest.fixture(scope="module")
def speakers() -> list:
    return [synthesize_speech(3.0, RATE, seed) for seed in range(6)]


def test_synthetic_speech_is_deterministic_with_length_and_level(speakers):
    a = synthetic_speech(3.0, RATE, seed=0)
    assert a.shape == (1, 48000) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, synthetic_speech(3.0, RATE, seed=0))
    assert torch.equal(a, speakers[0].audio)
    assert not torch.equal(a, speakers[1].audio)
    for s in speakers:
        assert -22.5 <= rms_db(s.audio) <= -19.99 and float(s.audio.abs().max()) <= 0.9801  # -20 unless peaky
        assert abs(float(s.audio.mean())) < 1e-3
    assert synthetic_speech(0.5, 8000, seed=3).shape == (1, 4000)
    assert synthetic_speech(1.0, 44100, seed=3).shape == (1, 44100)


def test_synthetic_speech_has_pauses_and_syllables(speakers):
    for s in speakers:
        frames = s.audio[0].double().unfold(0, 320, 320)  # 20 ms
        level = 10 * torch.log10(frames.square().mean(1) + 1e-20)
        quiet = (level < level.max() - 30).float().mean()
        assert 0.1 < quiet < 0.6  # pauses and gaps, but mostly speech
        voiced_fraction = float(s.voiced.float().mean())
        assert 0.3 < voiced_fraction < 0.75
        # syllables: peaks of the smoothed 10 ms energy envelope, 2 to 7 a second (speech: about 4)
        energy = s.audio[0].double().unfold(0, 160, 160).square().mean(1).numpy()
        smooth = np.convolve(energy, np.hanning(7) / np.hanning(7).sum(), "same")
        level = 10 * np.log10(smooth + 1e-12)
        peaks, _ = scipy.signal.find_peaks(level, prominence=6, height=level.max() - 25)
        assert 2 <= len(peaks) / 3.0 <= 7


def test_synthetic_speech_pitch_is_in_range_and_measurable(speakers):
    errors, medians = [], []
    for s in speakers:
        audio = s.audio[0].double().numpy()
        voiced_f0 = s.f0[s.voiced]
        assert voiced_f0.min() > 80 and voiced_f0.max() < 250
        assert torch.equal(s.f0 > 0, s.voiced)
        estimates = []
        for middle in vowel_middles(s.voiced, int(0.1 * RATE)):
            frame = slice(middle - 320, middle + 320)  # 40 ms
            estimate = autocorrelation_pitch(audio[frame], RATE)
            estimates.append(estimate)
            errors.append(estimate / float(s.f0[frame].double().mean()) - 1)
        assert len(estimates) >= 3
        assert 75 <= np.median(estimates) <= 255
        medians.append(np.median(estimates))
    errors = np.abs(np.array(errors))
    assert (errors < 0.05).mean() >= 0.9  # autocorrelation agrees with the synthesis contour
    assert max(medians) / min(medians) > 1.4  # low and high voices among six speakers


def test_synthetic_speech_has_formant_peaks(speakers):
    hits_f1, hits_f2, count = 0, 0, 0
    table = np.array(list(VOWELS.values()))
    for s in speakers:
        audio = s.audio[0].double().numpy()
        for middle in vowel_middles(s.voiced, int(0.1 * RATE)):
            formants = s.formants[middle // s.hop].double().numpy()
            assert table[:, 0].min() * 0.9 <= formants[0] <= table[:, 0].max() * 1.3  # F1 in the vowel range
            peaks = lpc_resonances(audio[middle - 240 : middle + 240], RATE)  # 30 ms
            hits_f1 += np.min(np.abs(peaks - formants[0])) < 0.15 * formants[0]
            hits_f2 += np.min(np.abs(peaks - formants[1])) < 0.10 * formants[1]
            count += 1
    assert count >= 20
    assert hits_f1 / count >= 0.8 and hits_f2 / count >= 0.8


def test_sample_speech_clips():
    clips = sample_speech_clips(count=3, seconds=1.0, sample_rate=8000)
    assert len(clips) == 3 and all(c.shape == (1, 8000) for c in clips)
    assert torch.equal(clips[1], synthetic_speech(1.0, 8000, seed=1))
    with pytest.raises(ValueError, match="count"):
        sample_speech_clips(count=0)


def test_sample_noise_clips_are_the_four_kinds():
    clips = sample_noise_clips(count=5, seconds=2.0, sample_rate=RATE)
    assert len(clips) == 5 and NOISE_KINDS == ("colored", "hum", "babble", "nonstationary")
    assert torch.equal(clips[0], sample_noise_clips(count=1, seconds=2.0, sample_rate=RATE)[0])
    for clip in clips:
        assert clip.shape == (1, 32000) and torch.isfinite(clip).all()
        assert -23.0 <= rms_db(clip) <= -19.99 and float(clip.abs().max()) <= 0.9801  # -20 unless peaky
    spectra = [torch.fft.rfft(c[0].double()).abs().square() for c in clips]
    freqs = torch.fft.rfftfreq(32000, 1 / RATE)
    # pink (clip 0) falls ~3 dB per octave; white (clip 4, second round) is flat
    band = lambda p, lo, hi: float(p[(freqs >= lo) & (freqs < hi)].mean())  # noqa: E731
    assert 7 < 10 * math.log10(band(spectra[0], 250, 500) / band(spectra[0], 2000, 4000)) < 11
    assert abs(10 * math.log10(band(spectra[4], 250, 500) / band(spectra[4], 2000, 4000))) < 1
    # hum: most energy at 50 or 60 Hz and their harmonics
    hum = spectra[1]
    mains = 50 if band(hum, 49, 51) > band(hum, 59, 61) else 60
    harmonic_bins = sum(((freqs - h * mains).abs() < 2).double() for h in range(1, 13))
    assert float((hum * harmonic_bins).sum() / hum.sum()) > 0.95
    # babble: speech-like spectrum (most energy below 1 kHz) but no long pauses
    babble = clips[2][0].double()
    assert band(spectra[2], 100, 1000) > 10 * band(spectra[2], 3000, 6000)
    frames = babble.unfold(0, 1600, 1600).square().mean(1)
    assert float(10 * torch.log10(frames.max() / frames.min())) < 20
    # non-stationary: its level wanders by more than 15 dB between 100 ms frames
    frames = clips[3][0].double().unfold(0, 1600, 1600).square().mean(1)
    assert float(10 * torch.log10(frames.max() / frames.min())) > 15


# --------------------------------------------------------------------------------------- SpeechNoiseDataset


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory) -> Path:
    """Four synthetic utterances (one at 8 kHz, one stereo, one shorter than a segment) and two noises."""
    root = tmp_path_factory.mktemp("speech")
    write_audio(root / "speech" / "a.wav", synthetic_speech(2.0, RATE, seed=10), RATE)
    write_audio(root / "speech" / "b.flac", synthetic_speech(1.5, 8000, seed=11), 8000)
    stereo = torch.cat([synthetic_speech(1.5, RATE, seed=12), synthetic_speech(1.5, RATE, seed=13)])
    write_audio(root / "speech" / "sub" / "c.wav", stereo, RATE)
    write_audio(root / "speech" / "d_short.wav", synthetic_speech(0.2, RATE, seed=14), RATE)
    noises = sample_noise_clips(count=2, seconds=1.0, sample_rate=RATE)
    write_audio(root / "noise" / "n0.wav", noises[0], RATE, subtype="FLOAT")
    write_audio(root / "noise" / "n1.wav", noises[1][:, :300], RATE, subtype="FLOAT")  # shorter than T
    return root


def find_offset(clip: torch.Tensor, crop: torch.Tensor) -> list[int]:
    windows = clip[0].unfold(0, crop.shape[-1], 1)
    return (windows == crop[0]).all(dim=1).nonzero().flatten().tolist()


def test_default_dataset_needs_no_arguments():
    dataset = SpeechNoiseDataset()
    assert len(dataset) == 8
    item = dataset[3]
    assert set(item) == {"target", "noise", "seed", "name"}
    assert item["target"].shape == (1, 32000) and item["noise"].shape == (1, 32000)
    assert item["target"].dtype == torch.float32 and isinstance(item["seed"], int)
    assert item["name"] == "synthetic_speech_3"
    assert rms_db(item["target"]) > -50 and rms_db(item["noise"]) > -60
    clip = synthetic_speech(3.0, RATE, seed=3)
    assert len(find_offset(clip, item["target"])) == 1  # a real crop of speaker 3


def test_crops_are_real_reproducible_and_change_with_the_epoch(speech_folder):
    def make(**kwargs) -> SpeechNoiseDataset:
        noise = speech_folder / "noise"
        return SpeechNoiseDataset(speech_folder / "speech", noise=noise, segment_seconds=0.5, **kwargs)

    a, b = make(), make()
    assert len(a) == 4 and a.speech_names == ["a", "b", "d_short", "c"]
    first = [a[i] for i in range(4)]
    for x, y in zip(first, [b[i] for i in range(4)], strict=True):
        assert torch.equal(x["target"], y["target"]) and torch.equal(x["noise"], y["noise"])
        assert x["seed"] == y["seed"] and x["name"] == y["name"]
        assert x["target"].shape == (1, 8000) and x["noise"].shape == (1, 8000)
    source = synthetic_speech(2.0, RATE, seed=10)
    source = write_and_read(source)
    assert len(find_offset(source, first[0]["target"])) == 1
    a.set_epoch(1)
    assert a.epoch == 1
    moved = [a[i] for i in range(4)]
    assert not torch.equal(moved[0]["target"], first[0]["target"]) and moved[0]["seed"] != first[0]["seed"]
    a.set_epoch(0)
    assert torch.equal(a[0]["target"], first[0]["target"])
    assert not torch.equal(make(seed=1)[0]["target"], first[0]["target"])
    assert len(make(repeat=3)) == 12


def write_and_read(audio: torch.Tensor) -> torch.Tensor:
    """What a PCM_16 file of ``audio`` reads back as."""
    return ((audio.double() * 32768).round().clamp(-32768, 32767) / 32768).float()


def test_resampled_mixed_down_padded_and_looped(speech_folder):
    dataset = SpeechNoiseDataset(speech_folder / "speech", noise=speech_folder / "noise", segment_seconds=0.5)
    # b.flac is 8 kHz: resampled to 16 kHz, 1.5 s -> 24000 samples, a crop of it
    from restore.io import read_audio

    b, _ = read_audio(speech_folder / "speech" / "b.flac", sample_rate=RATE)
    assert len(find_offset(b, dataset[1]["target"])) == 1
    # the stereo file is mixed down
    c, _ = read_audio(speech_folder / "speech" / "sub" / "c.wav", mono=True)
    assert len(find_offset(c, dataset[3]["target"])) == 1
    # the 0.2 s file is zero-padded at a random offset
    short = write_and_read(synthetic_speech(0.2, RATE, seed=14))
    offsets = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        target = dataset[2]["target"]
        (offset,) = find_offset(target, short)
        offsets.add(offset)
        assert target[:, :offset].abs().sum() == 0 and target[:, offset + 3200 :].abs().sum() == 0
    assert len(offsets) > 1
    # noise: crops of n0 or loops of the 300-sample n1
    n1, _ = read_audio(speech_folder / "noise" / "n1.wav")
    looped = 0
    for index in range(4):
        noise = dataset[index]["noise"]
        if torch.equal(noise[:, 300:600], noise[:, :300]):
            looped += 1
            assert len(find_offset(torch.cat([n1, n1], dim=1), noise[:, :300])) >= 1
    assert looped >= 1


def test_quiet_crops_are_redrawn(tmp_path):
    speech = synthetic_speech(2.0, RATE, seed=20)[:, 8000:16000]
    assert rms_db(speech) > -30
    half_silent = torch.cat([torch.zeros(1, 12000), speech], dim=1)  # a 0.25 s crop: silent half the time
    write_audio(tmp_path / "s" / "x.wav", half_silent, RATE, subtype="FLOAT")
    noise_dir = tmp_path / "n"
    write_audio(noise_dir / "n.wav", torch.randn(1, 4000) * 0.1, RATE, subtype="FLOAT")
    options = {"noise": noise_dir, "segment_seconds": 0.25, "repeat": 30}
    strict = SpeechNoiseDataset(tmp_path / "s", min_rms_db=-60, **options)
    loose = SpeechNoiseDataset(tmp_path / "s", min_rms_db=-500, **options)
    silent = lambda d: sum(float(d[i]["target"].abs().max()) == 0 for i in range(len(d)))  # noqa: E731
    assert silent(loose) >= 8  # ~15 expected
    assert silent(strict) <= 3  # five tries: ~1 expected


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path):
    speech = tmp_path / "speech"
    write_audio(speech / "good.wav", synthetic_speech(1.0, RATE, seed=30), RATE)
    (speech / "bad.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    noise = tmp_path / "noise"
    write_audio(noise / "n.wav", torch.randn(1, 8000) * 0.1, RATE, subtype="FLOAT")
    (noise / "empty.wav").write_bytes(b"")
    with pytest.warns(RuntimeWarning) as record:
        dataset = SpeechNoiseDataset(speech, noise=noise, segment_seconds=0.25)
    messages = " ".join(str(w.message) for w in record)
    assert "bad.wav" in messages and "empty.wav" in messages and "not a recognised audio file" in messages
    assert len(dataset) == 1 and dataset.speech_names == ["good"]
    assert dataset[0]["target"].shape == (1, 4000)
    with pytest.raises(AudioReadError, match="bad.wav"):
        SpeechNoiseDataset(speech, noise=noise, on_error="raise")
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.wav").write_bytes(b"RIFF1234")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="no readable audio files"):
            SpeechNoiseDataset(tmp_path / "only_bad", noise=noise)
    with pytest.raises(FileNotFoundError, match="speech folder or file not found"):
        SpeechNoiseDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no speech audio files"):
        SpeechNoiseDataset(tmp_path / "noise" / "..", noise=noise, recursive=False)


def test_files_damaged_after_the_header_are_skipped_when_read(tmp_path):
    speech = tmp_path / "speech"
    write_audio(speech / "a_good.flac", synthetic_speech(1.0, RATE, seed=31), RATE)
    data = (write_audio(tmp_path / "full.flac", synthetic_speech(1.0, RATE, seed=32), RATE)).read_bytes()
    (speech / "b_cut.flac").write_bytes(data[: len(data) // 2])  # header intact, frames missing
    dataset = SpeechNoiseDataset(speech, segment_seconds=0.25)
    assert len(dataset) == 2
    with pytest.warns(RuntimeWarning, match="b_cut.flac"):
        item = dataset[1]
    assert item["name"] == "a_good"  # the next readable file stands in
    raising = SpeechNoiseDataset(speech, segment_seconds=0.25, on_error="raise")
    with pytest.raises(AudioReadError, match="b_cut.flac"):
        raising[1]


def test_dataloader_workers_give_the_same_batches(speech_folder):
    noise = speech_folder / "noise"
    dataset = SpeechNoiseDataset(speech_folder / "speech", noise=noise, segment_seconds=0.25, repeat=2)
    dataset.set_epoch(3)

    def batches(workers: int) -> list[dict]:
        return list(DataLoader(dataset, batch_size=3, num_workers=workers, shuffle=False))

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 3
    for x, y in zip(serial, parallel, strict=True):
        assert torch.equal(x["target"], y["target"]) and torch.equal(x["noise"], y["noise"])
        assert torch.equal(x["seed"], y["seed"]) and x["name"] == y["name"]
    assert serial[0]["target"].shape == (3, 1, 4000) and serial[0]["seed"].dtype == torch.int64


def test_dataset_argument_errors():
    with pytest.raises(ValueError, match="segment_seconds"):
        SpeechNoiseDataset(segment_seconds=0)
    with pytest.raises(ValueError, match="on_error"):
        SpeechNoiseDataset(on_error="ignore")
    with pytest.raises(ValueError, match="sample_rate"):
        SpeechNoiseDataset(sample_rate=16000.0)
    with pytest.raises(IndexError):
        SpeechNoiseDataset(segment_seconds=0.1)[8]


# --------------------------------------------------------------------------------------- PairedAudioFolder


def test_voicebank_pairs():
    if not VOICEBANK.is_dir():
        pytest.skip(f"shared data not found: {VOICEBANK}")
    dataset = PairedAudioFolder(VOICEBANK)
    assert len(dataset) == 6 and dataset.names == [f"p287_00{i}" for i in range(1, 7)]
    seconds, snrs = [], []
    for index in range(6):
        item = dataset[index]
        assert item["sample_rate"] == 16000 and item["input"].shape == item["target"].shape
        assert item["input"].shape[0] == 1 and item["name"] == dataset.names[index]
        seconds.append(item["target"].shape[-1] / 16000)
        clean, noisy = item["target"].double(), item["input"].double()
        snrs.append(10 * math.log10(float(clean.square().sum() / (noisy - clean).square().sum())))
    # the folder's README: 1.96-7.23 s each, 28.9 s in all; SNR 12.8, 9.0, 4.2, -0.7, 14.6, 9.4 dB
    assert round(min(seconds), 2) == 1.96 and round(max(seconds), 2) == 7.23
    assert round(sum(seconds), 1) == 28.9
    np.testing.assert_allclose(snrs, [12.8, 9.0, 4.2, -0.7, 14.6, 9.4], atol=0.06)
    resampled = PairedAudioFolder(VOICEBANK, sample_rate=8000)[0]
    assert resampled["sample_rate"] == 8000 and resampled["input"].shape[-1] == math.ceil(31367 / 2)


def make_pairs(root: Path, names: dict[str, tuple[int, int]]) -> None:
    """clean/ and noisy/ files: name -> (clean frames, noisy frames); negative frames: 8 kHz."""
    for name, (clean_frames, noisy_frames) in names.items():
        for folder, frames in (("clean", clean_frames), ("noisy", noisy_frames)):
            if frames:
                rate = 8000 if frames < 0 else RATE
                write_audio(root / folder / name, torch.randn(1, abs(frames)) * 0.1, rate)


def test_paired_folder_errors_name_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        PairedAudioFolder(tmp_path / "none")
    make_pairs(tmp_path / "ok", {"a.wav": (100, 100), "b.wav": (50, 50)})
    dataset = PairedAudioFolder(tmp_path / "ok")
    assert len(dataset) == 2 and dataset.names == ["a", "b"] and dataset[1]["input"].shape == (1, 50)
    (tmp_path / "no_noisy" / "clean").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="noisy folder not found"):
        PairedAudioFolder(tmp_path / "no_noisy")
    make_pairs(tmp_path / "orphan", {"a.wav": (100, 100), "b.wav": (100, 0)})
    with pytest.raises(ValueError, match=r"clean file '.*clean/b\.wav' has no noisy partner '.*noisy/b\.wav"):
        PairedAudioFolder(tmp_path / "orphan")
    make_pairs(tmp_path / "length", {"a.wav": (100, 90)})
    with pytest.raises(ValueError, match=r"length \(frames\) mismatch: noisy '.*noisy/a\.wav' has 90"):
        PairedAudioFolder(tmp_path / "length")
    make_pairs(tmp_path / "rate", {"a.wav": (100, -100)})
    with pytest.raises(ValueError, match=r"sample rate mismatch: noisy '.*noisy/a\.wav' has 8000"):
        PairedAudioFolder(tmp_path / "rate")
