"""Turn a finished training run into a bundled model: weights in restore/weights/ plus a model card.

    python benchmarks/bundle.py RUN_DIR sr-x4 [--data ../shared/data]

Reads ``RUN_DIR/model.safetensors``, ``config.yaml`` and ``metrics.jsonl``; scores the model by the
task's protocol on ../shared/data; writes ``restore/weights/<file>`` (our safetensors format, at most
10 MB) and ``restore/weights/<stem>.md`` (architecture, parameters, cost, training data, steps, wall
time, the command that reproduces it, metrics beside the baselines). Scores are kept in
``benchmarks/results/bundled_<name>.json``.

- super-resolution: PSNR-Y / SSIM-Y (crop = scale, 8-bit) on Set5, Set14, BSD100 against MATLAB
  bicubic, by ``restore.metrics`` (the protocol that reproduces the published bicubic numbers);
- deblurring: PSNR / SSIM on the real GoPro pairs, blurred input against the model's output;
- inpainting: PSNR inside the holes and SSIM on BSD100 centre crops with the EdgeConnect masks,
  against OpenCV's Telea inpainting;
- speech denoising: PESQ (wb, nb), STOI and SI-SDR on the real VoiceBank+DEMAND pairs, against the
  noisy input and the classical enhancers (log-MMSE, Wiener, spectral subtraction), each run through
  the same ``AudioPredictor`` path as ``restore.enhance``;
- bandwidth extension: LSD and SI-SDR of the clean VoiceBank utterances band-limited to 8 and 4 kHz
  sampling (resampled back to 16 kHz), input against output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import restore.models as models  # noqa: E402
from benchmarks import quality  # noqa: E402
from restore import hub, metrics  # noqa: E402
from restore.degrade import imresize  # noqa: E402
from restore.infer import Predictor  # noqa: E402
from restore.io import list_images, read_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MAX_BYTES = 10 * 2**20
# PSNR-Y on Set5 / Set14 / BSD100 as published, by scale (one table: benchmarks/quality.py, sources in
# docs/quality.md)
PUBLISHED = {
    scale: {name: values[scale] for name, values in quality.PUBLISHED.items()} for scale in quality.SCALES
}
SR_SETS = ("Set5", "Set14", "BSD100")
# Diffusion models are scored as restore.upscale / restore.inpaint run them by default (DDIM, 20 steps,
# seed 0); on Set5 and Set14 only (BSD100 would take about half an hour of CPU sampling).
DIFFUSION_SR_SETS = ("Set5", "Set14")


def sr_scores(model, data: Path, scale: int, sets: tuple[str, ...] = SR_SETS) -> dict:
    """Mean PSNR-Y/SSIM-Y of the model and of bicubic on each SR set (HR images, LR by imresize)."""
    predictor = Predictor(model, device="cpu")
    scores = {}
    for name in sets:
        rows = {"model": [], "bicubic": []}
        for path in list_images(data / "images" / name / "HR"):
            hr = read_image(path, mode="keep")[None]
            gray = hr.shape[1] == 1
            h, w = (s // scale * scale for s in hr.shape[-2:])
            hr = hr[..., :h, :w]
            rgb = hr.expand(-1, 3, -1, -1) if gray else hr
            lr = imresize(rgb, scale=1 / scale, quantize=True).clamp(0, 1)
            outputs = {"model": predictor(lr).clamp(0, 1), "bicubic": imresize(lr, scale=scale).clamp(0, 1)}
            for key, out in outputs.items():
                if gray:  # a gray image is scored on its own values (the published protocol)
                    out = metrics.rgb_to_y(out) * 255 / 219 - 16 / 219
                    out = out.clamp(0, 1)
                pair = (out, hr)
                rows[key].append(
                    (
                        float(metrics.psnr(*pair, crop_border=scale, y_channel=True)[0]),
                        float(metrics.ssim(*pair, crop_border=scale, y_channel=True)[0]),
                    )
                )
        scores[name] = {
            key: {
                "psnr_y": sum(r[0] for r in values) / len(values),
                "ssim_y": sum(r[1] for r in values) / len(values),
            }
            for key, values in rows.items()
        }
    return scores


def deblur_scores(model, data: Path) -> dict:
    """PSNR/SSIM (RGB) of the blurred input and of the model's output on the GoPro sample pairs."""
    predictor = Predictor(model, device="cpu")
    rows = {"blurred": [], "model": []}
    root = data / "images" / "GoPro_samples"
    for path in list_images(root / "blur"):
        blur = read_image(path)[None]
        sharp = read_image(root / "sharp" / path.name)[None]
        for key, out in (("blurred", blur), ("model", predictor(blur).clamp(0, 1))):
            rows[key].append((float(metrics.psnr(out, sharp)[0]), float(metrics.ssim(out, sharp)[0])))
    return {
        "GoPro_samples": {
            key: {"psnr": sum(r[0] for r in v) / len(v), "ssim": sum(r[1] for r in v) / len(v)}
            for key, v in rows.items()
        }
    }


def inpaint_scores(model, data: Path, side: int = 256) -> dict:
    """PSNR inside the holes and SSIM (whole image; known pixels are identical for both methods) of the
    model against OpenCV's Telea inpainting, on BSD100 centre crops with the EdgeConnect masks."""
    import cv2
    import numpy as np
    import torch.nn.functional as F

    predictor = Predictor(model, device="cpu")
    mask_files = sorted((data / "images" / "Inpainting_EdgeConnect").glob("*/masks/*.png"))
    rows = {"telea": [], "model": []}
    for index, path in enumerate(list_images(data / "images" / "BSD100" / "HR")):
        clean = read_image(path)[None]
        h, w = clean.shape[-2:]
        top, left = (h - side) // 2, (w - side) // 2
        clean = clean[..., top : top + side, left : left + side]
        mask = read_image(mask_files[index % len(mask_files)], mode="keep")[None, :1]
        mask = (F.interpolate(mask, size=(side, side), mode="nearest") > 0.5).float()
        holed = clean * (1 - mask)
        bgr = (holed[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
        telea = cv2.inpaint(bgr, (mask[0, 0].numpy() * 255).astype(np.uint8), 3, cv2.INPAINT_TELEA)
        telea = torch.from_numpy(telea[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        outputs = {"telea": telea, "model": predictor(holed, mask).clamp(0, 1)}
        for key, out in outputs.items():
            q = (out * 255).round() / 255
            mse = float(((q - clean) ** 2 * mask).sum() / (mask.sum() * 3))
            rows[key].append((10 * math.log10(1 / mse), float(metrics.ssim(out, clean)[0])))
    return {
        "BSD100 (256 px centre crops, EdgeConnect masks)": {
            key: {"psnr": sum(r[0] for r in v) / len(v), "ssim": sum(r[1] for r in v) / len(v)}
            for key, v in rows.items()
        }
    }


AUDIO_BASELINES = ("logmmse", "wiener", "spectral_subtraction")
DENOISE_SCORES = ("si_sdr", "stoi", "pesq_wb", "pesq_nb")  # the column order of the cards


def _enhanced(model, audio: torch.Tensor, rate: int, bandwidth: bool = False) -> torch.Tensor:
    from restore.infer.audio_predictor import AudioPredictor

    predictor = AudioPredictor(model, device="cpu", resample_output=not bandwidth)
    out, _ = predictor(audio, rate)
    return out


def denoise_scores(model, data: Path) -> dict:
    """Mean PESQ/STOI/SI-SDR on the VoiceBank pairs: noisy input, classical enhancers, the model."""
    from restore.data.audio import PairedAudioFolder

    pairs = PairedAudioFolder(data / "audio" / "VoiceBank_DEMAND_debug", sample_rate=16000)
    contenders = {"noisy": None, **{name: models.build(name) for name in AUDIO_BASELINES}, "model": model}
    rows: dict[str, list[dict]] = {name: [] for name in contenders}
    for index in range(len(pairs)):
        item = pairs[index]
        noisy, clean = item["input"], item["target"]
        for name, net in contenders.items():
            pred = noisy if net is None else _enhanced(net, noisy, 16000)
            rows[name].append(metrics.speech_scores(pred[None], clean[None], 16000, DENOISE_SCORES)[0])
    return {"VoiceBank_DEMAND_debug": {name: metrics.mean_scores(r) for name, r in rows.items()}}


def bandwidth_scores(model, data: Path) -> dict:
    """Mean LSD / SI-SDR of band-limited clean VoiceBank speech (8 and 4 kHz sampling): input vs model."""
    from restore.degrade.audio import band_limit
    from restore.io.audio import list_audio, read_audio

    scores = {}
    files = list_audio(data / "audio" / "VoiceBank_DEMAND_debug" / "clean")
    for low in (8000, 4000):
        rows: dict[str, list[dict]] = {"band-limited input": [], "model": []}
        for path in files:
            clean, rate = read_audio(path, sample_rate=16000, mono=True)
            narrow = band_limit(clean[None], 16000, low)[0]
            for name, pred in (
                ("band-limited input", narrow),
                ("model", _enhanced(model, narrow, 16000, True)),
            ):
                pred = pred[..., : clean.shape[-1]]
                rows[name].append(metrics.speech_scores(pred[None], clean[None], 16000, ("lsd", "si_sdr"))[0])
        scores[f"VoiceBank clean, from {low // 1000} kHz sampling"] = {
            k: metrics.mean_scores(v) for k, v in rows.items()
        }
    return scores


def audio_gflops_per_second(model) -> float:
    """Forward FLOPs per second of 16 kHz audio (FlopCounterMode on one second), in GFLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 16000))
    return counter.get_total_flops() / 1e9


def audio_card(entry, model, facts: dict, scores: dict, gflops: float, command: str) -> str:
    """The model card of a bundled audio model."""
    spec = model.spec
    params = sum(p.numel() for p in model.parameters())
    cfg = facts["config"]
    data, train = cfg["data"], cfg["train"]
    train_data = data["train"] if isinstance(data["train"], list) else [data["train"]]
    noise = data.get("noise") or "synthetic"

    def _names(items) -> str:
        return ", ".join(f"`{Path(str(n)).name}`" for n in items) if isinstance(items, list) else str(items)

    lines = [
        f"# {entry.name}: {entry.description}",
        "",
        f"- Architecture: `{spec.name}` ({params:,} parameters, {gflops:.2f} GFLOPs per second of "
        f"16 kHz audio), arguments {json.dumps(model.config)}",
        f"- Task: {cfg['task']['name']} at {data['sample_rate']} Hz, "
        f"degradation `{cfg['task']['degradation']}`",
        f"- Training speech ({data['segment_seconds']} s segments): "
        + ", ".join(f"`{Path(str(t)).name}`" for t in train_data)
        + " (`../data_synth/speech` is espeak-ng/flite speech from `recipes/tools/synthesize_speech.py`)",
        *(["- Noise: " + _names(noise)] if cfg["task"]["name"] == "audio_denoise" else []),
        f"- Losses: `{json.dumps(cfg['losses'])}`; optimiser {train['optimizer']} lr {train['lr']}, "
        f"{train['scheduler']} schedule, batch {data['batch_size']}, EMA {train['ema_decay']}",
        f"- Steps: {facts['steps']}; wall time: {facts['seconds'] / 60:.0f} minutes on this project's "
        "2-core CPU machine (1 thread, shared with other jobs)",
        f"- Reproduce: `{command}`",
        "- Evaluation data (never trained on): "
        + (
            "the 6 real VoiceBank+DEMAND pairs in `../shared/data/audio/VoiceBank_DEMAND_debug` "
            "(speaker p287, real DEMAND noise)"
            if cfg["task"]["name"] == "audio_denoise"
            else "the 6 clean VoiceBank utterances in `../shared/data/audio/VoiceBank_DEMAND_debug/clean`, "
            "band-limited by resampling down and back up (Kaiser-windowed sinc)"
        ),
        "",
        "## Scores",
        "",
    ]
    for dataset, rows in scores.items():
        columns = list(next(iter(rows.values())))
        lines += [
            f"{dataset} (means):",
            "",
            "| | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for name, values in rows.items():
            label = f"**{name}**" if name == "model" else name
            lines.append(f"| {label} | " + " | ".join(f"{values[c]:.3f}" for c in columns) + " |")
        lines.append("")
    lines += ["Licence of the weights: Apache-2.0, as the project. The training audio's own terms"]
    lines += ["apply to the data, which is not redistributed."]
    return "\n".join(lines) + "\n"


def gflops_per_output_mp(model) -> float:
    """Forward FLOPs per output megapixel (FlopCounterMode on a 64x64 input), in GFLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = models.example_inputs(model, batch=1, size=64)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(*inputs)
    return counter.get_total_flops() / out[0, 0].numel() / 1e3


def training_facts(run: Path) -> dict:
    """Steps, wall time and the last validation numbers from the run's metrics.jsonl and config."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    step = max(x["step"] for x in lines)
    seconds = max((x.get("seconds", 0.0) for x in lines), default=0.0)
    return {"config": config, "steps": step, "seconds": seconds}


def card(entry, model, facts: dict, scores: dict, gflops: float, command: str) -> str:
    spec = model.spec
    params = sum(p.numel() for p in model.parameters())
    cfg = facts["config"]
    data, train = cfg["data"], cfg["train"]
    minutes = f"{facts['seconds'] / 60:.0f} minutes" if facts["seconds"] else "see the note below"
    lines = [
        f"# {entry.name}: {entry.description}",
        "",
        f"- Architecture: `{spec.name}` ({params:,} parameters, {gflops:.1f} GFLOPs per output megapixel), "
        f"arguments {json.dumps(model.config if hasattr(model, 'config') else {})}",
        f"- Task: {spec.task}, scale {spec.scale}",
        f"- Training data: `{data['train']}` (random {data['patch_size']} px patches, flips and "
        f"rotations), "
        + (
            f"masks `{json.dumps(cfg['task']['mask'])}`"
            if "inpaint" in cfg["task"]["name"]
            else f"degradation `{cfg['task']['degradation']}`"
        ),
        f"- Losses: `{json.dumps(cfg['losses'])}`; optimiser {train['optimizer']} lr {train['lr']}, "
        f"{train['scheduler']} schedule, batch {data['batch_size']}, EMA {train['ema_decay']}",
        *([f"- Stored as {facts['storage']}"] if "storage" in facts else []),
        f"- Steps: {facts['steps']}; wall time: {minutes} on this project's 2-core CPU machine "
        f"(1 thread, shared with other jobs)",
        *(
            [
                "- Sampling (as `restore.upscale` / `restore.inpaint` by default): DDIM, 20 steps, seed 0; "
                "the GFLOPs above are one denoiser evaluation, a sample costs 20 of them"
            ]
            if spec.task == "diffusion"
            else []
        ),
        f"- Reproduce: `{command}`",
        "",
        "## Scores",
        "",
    ]
    sets = list(scores) if spec.task in ("sr", "diffusion") and spec.scale > 1 else []
    if sets:
        lines += ["PSNR-Y / SSIM-Y (crop = scale, 8-bit outputs; `python benchmarks/bundle.py`):", ""]
        lines += ["| | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        for key in ("bicubic", "model"):
            label = "bicubic (MATLAB)" if key == "bicubic" else f"**{entry.name}**"
            cells = [f"{scores[s][key]['psnr_y']:.2f} / {scores[s][key]['ssim_y']:.4f}" for s in sets]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "Published PSNR-Y for comparison:", "", "| | " + " | ".join(SR_SETS) + " |"]
        lines.append("|---|" + "---|" * len(SR_SETS))
        for name, values in PUBLISHED.get(spec.scale, {}).items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    else:
        for dataset, rows in scores.items():
            lines += [f"{dataset}:", "", "| | PSNR | SSIM |", "|---|---|---|"]
            for key, value in rows.items():
                lines.append(f"| {key} | {value['psnr']:.2f} | {value['ssim']:.4f} |")
    lines += ["", "Licence of the weights: Apache-2.0, as the project. The training images' own terms"]
    lines += ["apply to the data, which is not redistributed."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (model.safetensors, config.yaml)")
    parser.add_argument("name", help="the bundled entry (restore.hub.BUNDLED), e.g. sr-x4")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--command", default=None, help="the command that trained the run (for the card)")
    args = parser.parse_args()
    entry = hub.get_bundled(args.name)
    if entry is None:
        raise SystemExit(f"unknown bundled name {args.name!r}; known: {', '.join(hub.bundled_names())}")
    model = models.load(args.run / "model.safetensors").eval()
    facts = training_facts(args.run)
    served = model
    if model.spec.task == "diffusion":
        from restore.infer.diffusion_sampler import DiffusionSampler

        served = DiffusionSampler(model, steps=20, seed=0)
    if served.spec.task == "sr":
        sets = DIFFUSION_SR_SETS if model.spec.task == "diffusion" else SR_SETS
        scores = sr_scores(served, args.data, model.spec.scale, sets)
    elif served.spec.task == "deblur":
        scores = deblur_scores(served, args.data)
    elif served.spec.task == "inpaint":
        scores = inpaint_scores(served, args.data)
    elif entry.task == "audio_denoise":
        scores = denoise_scores(model, args.data)
    elif entry.task == "audio_bandwidth":
        scores = bandwidth_scores(model, args.data)
    else:
        scores = {}
    audio = model.spec.inputs[0] == "audio"
    gflops = audio_gflops_per_second(model) if audio else gflops_per_output_mp(model)
    command = args.command or f"see {args.run}/config.yaml"
    target = entry.path
    target.parent.mkdir(parents=True, exist_ok=True)
    models.save(model, target)
    if target.stat().st_size > MAX_BYTES:  # store float16 (loading casts back to float32)
        reference = models.example_inputs(model, batch=1, size=64)
        with torch.no_grad():
            before = model(*reference)
            models.save(model.half(), target)
            model = models.load(target).eval()
            drift = float((model(*reference) - before).abs().max())
        facts["storage"] = f"float16 weights (max output change on a 64 px example: {drift:.1e})"
        print(facts["storage"])
    if target.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{target} is {target.stat().st_size / 2**20:.1f} MB, above the 10 MB limit")
    entry.card.write_text((audio_card if audio else card)(entry, model, facts, scores, gflops, command))
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"name": entry.name, "model": model.spec.name, "gflops_per_mp": gflops, **facts}
    result["scores"] = scores
    (RESULTS / f"bundled_{entry.name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(entry.card.read_text())


if __name__ == "__main__":
    main()
