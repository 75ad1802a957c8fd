"""The trainer on audio tasks: pairs, a few steps with validation, resume, and mixed-precision steps."""

from __future__ import annotations

import json
import math

import pytest
import soundfile as sf
import torch
from train_helpers import isolated_training, recording_trainer, tiny_config

import losses
import restore.models as models
from restore.train import Trainer
from restore.train.tasks import AudioTask, build_task, normalise_level

AUDIO: dict = {
    "model__name": "spectral_mask",
    "task__name": "audio_denoise",
    "task__degradation": {"snr_db": [0, 10]},
    "data__segment_seconds": 0.5,
    "data__batch_size": 2,
    "losses": {"l1": 1.0, "mrstft": 1.0},
    "train__channels_last": False,
    "validation__max_images": 2,
    "validation__max_seconds": 1.0,
    "validation__samples": 1,
}


def test_audio_pairs_are_level_normalised_reproducible_and_noisy():
    from restore.train.config import TaskConfig

    task = build_task(TaskConfig(name="audio_denoise", degradation={"snr_db": [5, 5]}), 16000)
    assert isinstance(task, AudioTask) and task.modality == "audio"
    g = torch.Generator().manual_seed(0)
    clean = 0.05 * torch.randn(3, 1, 8000, generator=g)
    noise = torch.randn(3, 1, 8000, generator=g)
    batch = {"target": clean, "noise": noise, "seed": torch.tensor([1, 2, 3])}
    pair = task.make_pair(batch, torch.device("cpu"))
    again = task.make_pair(batch, torch.device("cpu"))
    assert torch.equal(pair["input"], again["input"]) and torch.equal(pair["target"], again["target"])
    assert pair["input"].shape == (3, 1, 8000)
    # the input has unit RMS per item, and the target was divided by the same factor
    assert torch.allclose(normalise_level(pair["input"]).flatten(), torch.ones(3), atol=1e-5)
    ratio = pair["target"] / clean
    assert torch.allclose(ratio, ratio[:, :, :1].expand_as(ratio), rtol=1e-4)
    assert not torch.allclose(pair["input"], pair["target"], atol=1e-2)


def test_an_image_model_is_refused_for_an_audio_task(tmp_path):
    config = tiny_config(tmp_path, **{**AUDIO, "model__name": "compact_tiny"})
    with isolated_training(), pytest.raises(ValueError, match="takes image, but task 'audio_denoise'"):
        Trainer(config)
    config = tiny_config(tmp_path, **{**AUDIO, "data__sample_rate": 8000})
    with (
        isolated_training(),
        pytest.raises(ValueError, match="runs at 16000 Hz, but data.sample_rate is 8000"),
    ):
        Trainer(config)


def test_a_short_audio_run_trains_validates_and_writes_wav_samples(tmp_path):
    config = tiny_config(tmp_path, train__steps=3, validation__every=3, **AUDIO)
    with isolated_training():
        trainer = Trainer(config)
        before = {k: v.clone() for k, v in trainer._unwrap(trainer.generator).state_dict().items()}
        result = trainer.train()
    after = trainer._unwrap(trainer.generator).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert result.step == 3 and result.skipped_steps == 0
    assert {"si_sdr", "si_sdr_gain", "pesq_wb", "stoi"} <= set(result.metrics)
    assert math.isfinite(result.metrics["si_sdr"]) and 0 < result.metrics["stoi"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val/si_sdr"] == pytest.approx(result.metrics["si_sdr"])
    samples = sorted((tmp_path / "samples" / "step-0000003").iterdir())
    assert [p.name for p in samples] == ["sample0_input.wav", "sample0_output.wav", "sample0_target.wav"]
    info = sf.info(samples[0])
    assert info.samplerate == 16000 and info.frames == 16000  # max_seconds of validation audio
    # the exported weights are the EMA model, and validate the same way
    model = models.load(result.weights)
    assert model.spec.name == "spectral_mask"


def test_audio_resume_sees_the_same_batches_as_a_straight_run(tmp_path):
    run = {**AUDIO, "validation__every": 0, "model__name": "spectral_mask_plain"}
    with isolated_training():
        straight = recording_trainer(tiny_config(tmp_path / "a", train__steps=4, **run))
        straight.train()
    with isolated_training():
        first = recording_trainer(tiny_config(tmp_path / "b", train__steps=2, output__save_every=2, **run))
        first.train()
    with isolated_training():
        second = recording_trainer(
            tiny_config(tmp_path / "b", train__steps=4, output__resume="latest", **run)
        )
        second.train()
    assert straight.seen == first.seen + second.seen
    a = straight._unwrap(straight.generator).state_dict()
    b = second._unwrap(second.generator).state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


# fp16 on the CPU is emulated and slow: one model covers it (each model's bf16 step is also checked in
# test_models_all.py)
@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("spectral_mask", torch.bfloat16),
        ("demucs_small", torch.bfloat16),
        ("aero", torch.bfloat16),
        ("spectral_mask", torch.float16),
    ],
)
def test_an_adversarial_audio_step_is_finite_under_cpu_autocast(name, dtype, one_thread):
    torch.manual_seed(0)
    generator = models.build(name).train()
    discriminator = models.build("msstft_discriminator_small").train()
    g_loss = losses.build(
        {
            "l1": 1.0,
            "mrstft": 1.0,
            "mel": 1.0,
            "si_sdr": 0.1,
            "gan": {"name": "hinge"},
            "feature_matching": 1.0,
        }
    )
    d_loss = losses.build({"gan": {"name": "hinge", "side": "discriminator"}})
    t = torch.arange(4000) / 16000
    clean = (0.3 * torch.sin(2 * math.pi * 220 * t) * torch.sin(math.pi * 2 * t))[None, None].repeat(2, 1, 1)
    noisy = clean + 0.05 * torch.randn(clean.shape)
    with torch.autocast("cpu", dtype=dtype):
        pred = generator(noisy)
        fake, fake_features = discriminator(pred, return_features=True)
        real, real_features = discriminator(clean, return_features=True)
        total, terms = g_loss(
            pred,
            clean,
            fake_logits=fake,
            real_logits=real,
            fake_features=fake_features,
            real_features=[[f.detach() for f in group] for group in real_features],
        )
    total.backward()
    assert all(math.isfinite(float(v)) for v in terms.values()), terms
    grads = [p.grad for p in generator.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    with torch.autocast("cpu", dtype=dtype):
        d_fake = discriminator(pred.detach())
        d_real = discriminator(clean)
        d_total, _ = d_loss(fake_logits=d_fake, real_logits=d_real)
    d_total.backward()
    assert math.isfinite(float(d_total.detach()))
    assert all(torch.isfinite(p.grad).all() for p in discriminator.parameters() if p.grad is not None)
