"""Speech enhancement: denoising (default) or bandwidth extension, trained by the shared trainer.

    accelerate launch recipes/audio_enhance.py                        # quick run, built-in speech + noise
    accelerate launch recipes/audio_enhance.py --task bandwidth       # bandwidth extension (AERO-style)
    accelerate launch recipes/audio_enhance.py --config recipes/configs/audio_denoise_gan.yaml
    accelerate launch recipes/audio_enhance.py --data SPEECH_DIR --data.noise NOISE_DIR \\
        --val VoiceBank_DEMAND_debug --steps 20000
    python recipes/audio_enhance.py --resume latest                  # continue the newest checkpoint

--data takes folders of clean speech (wav/flac/ogg, any rate: resampled to data.sample_rate);
--data.noise folders of noise recordings (default: synthetic noise). --val takes a paired folder
(clean/ + noisy/, the VoiceBank+DEMAND layout) or a folder of clean speech.
"""

from __future__ import annotations

import sys
from pathlib import Path

from restore.train.recipe import parse_recipe_args, run_config

CONFIGS = Path(__file__).resolve().parent / "configs"
TASK_CONFIGS = {"denoise": CONFIGS / "audio_denoise.yaml", "bandwidth": CONFIGS / "audio_bandwidth.yaml"}


def _task_option(parser) -> None:
    parser.add_argument(
        "--task", choices=sorted(TASK_CONFIGS), default="denoise", help="which config (default: %(default)s)"
    )


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    task = "bandwidth" if _value_of(argv, "--task") == "bandwidth" else "denoise"
    config, _ = parse_recipe_args(argv, TASK_CONFIGS[task], __doc__.splitlines()[0], extra=_task_option)
    return run_config(config)


def _value_of(argv: list[str], option: str) -> str | None:
    for index, item in enumerate(argv):
        if item == option and index + 1 < len(argv):
            return argv[index + 1]
        if item.startswith(option + "="):
            return item.split("=", 1)[1]
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
