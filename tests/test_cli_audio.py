"""`restore enhance` on files and folders (broken files, resume, atomic writes); `restore eval-audio`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from restore import metrics
from restore.cli import main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOICEBANK = SHARED_DATA / "audio" / "VoiceBank_DEMAND_debug"


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.5 * t + seed)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 16)) * np.sin(np.pi * 2.5 * t).clip(0) ** 2
    return (0.2 * voice).astype(np.float32)


def noisy_folder(root: Path, count: int = 3, rate: int = 16000) -> tuple[Path, Path]:
    """``root/clean`` and ``root/noisy`` with ``count`` pairs (white noise at 5 dB)."""
    rng = np.random.default_rng(0)
    (root / "clean").mkdir(parents=True)
    (root / "noisy").mkdir()
    for i in range(count):
        clean = speech_like(1.5, rate, seed=i)
        noise = rng.standard_normal(clean.shape).astype(np.float32)
        noise *= np.sqrt((clean**2).mean() / (noise**2).mean() / 10**0.5)
        sf.write(root / "clean" / f"u{i}.wav", clean, rate)
        sf.write(root / "noisy" / f"u{i}.wav", clean + noise, rate)
    return root / "clean", root / "noisy"


def test_enhance_a_folder_skips_a_broken_file_reports_it_and_exits_1(tmp_path, capsys):
    _, noisy = noisy_folder(tmp_path / "data")
    (noisy / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "out"
    code = main(["enhance", str(noisy), str(out), "--model", "speech-wiener", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["u0.wav", "u1.wav", "u2.wav"]
    assert "1 failed" in err and "broken.wav" in err
    for name in ("u0.wav", "u1.wav", "u2.wav"):
        info = sf.info(out / name)
        assert info.samplerate == 16000 and info.frames == 24000 and info.subtype == "PCM_16"


def test_enhance_resumes_with_skip_existing_and_leaves_no_temporary_files(tmp_path, capsys):
    _, noisy = noisy_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["enhance", str(noisy), str(out), "--model", "speech-wiener", "--no-progress"]) == 0
    first = (out / "u1.wav").stat().st_mtime_ns
    (out / "u2.wav").unlink()  # as if the run had been interrupted before this file
    capsys.readouterr()
    code = main(
        ["enhance", str(noisy), str(out), "--model", "speech-wiener", "--skip-existing", "--no-progress"]
    )
    assert code == 0
    assert "1 done, 0 failed, 2 skipped" in capsys.readouterr().out
    assert (out / "u1.wav").stat().st_mtime_ns == first
    assert sorted(p.name for p in out.iterdir()) == ["u0.wav", "u1.wav", "u2.wav"]  # no .tmp left


def test_enhance_one_file_with_another_format_and_subtype(tmp_path):
    _, noisy = noisy_folder(tmp_path / "data", count=1)
    target = tmp_path / "clean.flac"
    code = main(["enhance", str(noisy / "u0.wav"), str(target), "--subtype", "PCM_24", "--no-progress"])
    assert code == 0
    info = sf.info(target)
    assert (info.format, info.subtype, info.frames) == ("FLAC", "PCM_24", 24000)


def test_enhance_bad_arguments_exit_2_with_a_message(tmp_path, capsys):
    assert main(["enhance", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["enhance", str(tmp_path / "empty"), str(tmp_path / "o")]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert main(["enhance", str(tmp_path / "empty"), str(tmp_path / "o"), "--model", "sr-x4"]) == 2
    assert "'sr-x4' is for task 'sr'" in capsys.readouterr().err


def test_eval_audio_prints_per_file_scores_equal_to_the_metric_functions(tmp_path, capsys):
    clean, noisy = noisy_folder(tmp_path / "data")
    report = tmp_path / "scores.json"
    assert main(["eval-audio", str(clean), str(noisy), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "mean" in printed and "si_sdr" in printed
    result = json.loads(report.read_text())
    assert set(result["files"]) == {"u0.wav", "u1.wav", "u2.wav"}
    x, rate = sf.read(noisy / "u1.wav", dtype="float32")
    y, _ = sf.read(clean / "u1.wav", dtype="float32")
    x, y = torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None]
    scores = result["files"]["u1.wav"]
    assert scores["si_sdr"] == pytest.approx(float(metrics.si_sdr(x, y)[0]), abs=1e-6)
    assert scores["lsd"] == pytest.approx(float(metrics.lsd(x, y, rate)[0]), abs=1e-6)
    assert scores["stoi"] == pytest.approx(float(metrics.stoi(x, y, rate)[0]), abs=1e-9)
    assert scores["pesq_wb"] == pytest.approx(float(metrics.pesq(x, y, rate, mode="wb")[0]), abs=1e-9)
    means = {k: sum(s[k] for s in result["files"].values()) / 3 for k in scores}
    assert result["mean"] == pytest.approx(means)


def test_eval_audio_reports_a_file_without_a_partner_and_exits_1(tmp_path, capsys):
    clean, noisy = noisy_folder(tmp_path / "data", count=2)
    sf.write(noisy / "stray.wav", speech_like(1.0), 16000)
    assert main(["eval-audio", str(clean), str(noisy)]) == 1
    err = capsys.readouterr().err
    assert "stray.wav: no clean file named stray.*" in err


@pytest.mark.skipif(not VOICEBANK.is_dir(), reason="needs ../shared/data/audio/VoiceBank_DEMAND_debug")
def test_the_default_denoiser_improves_pesq_and_si_sdr_on_real_voicebank_pairs(tmp_path, capsys):
    out = tmp_path / "enhanced"
    assert main(["enhance", str(VOICEBANK / "noisy"), str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "eval-audio",
                str(VOICEBANK / "clean"),
                str(VOICEBANK / "noisy"),
                "--json",
                str(tmp_path / "n.json"),
            ]
        )
        == 0
    )
    assert main(["eval-audio", str(VOICEBANK / "clean"), str(out), "--json", str(tmp_path / "e.json")]) == 0
    noisy = json.loads((tmp_path / "n.json").read_text())["mean"]
    enhanced = json.loads((tmp_path / "e.json").read_text())["mean"]
    assert enhanced["pesq_wb"] > noisy["pesq_wb"] and enhanced["si_sdr"] > noisy["si_sdr"]
    assert all(math.isfinite(v) for v in enhanced.values())
