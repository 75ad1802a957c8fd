"""SRGAN/ESRGAN: a PSNR-oriented stage (L1), then perceptual + adversarial training from its weights.

    accelerate launch recipes/sr_gan.py                  # both stages, briefly, on the bundled samples
    accelerate launch recipes/sr_gan.py --data DIR --val Set5 --pretrain-steps 100000 --steps 400000
    accelerate launch recipes/sr_gan.py --model.weights psnr.safetensors     # skip the PSNR stage
    accelerate launch recipes/sr_gan.py --config recipes/configs/realesrgan.yaml --data DIR

The PSNR stage writes <output>/pretrain/ (its own checkpoints and model.safetensors); it is skipped
when that model exists already, so --resume latest continues whichever stage was running.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from restore.train.recipe import parse_recipe_args, run_config

CONFIG = Path(__file__).resolve().parent / "configs" / "sr_gan.yaml"


def _options(parser) -> None:
    parser.add_argument(
        "--pretrain-steps", type=int, default=100, help="L1 steps before the GAN stage (0: none)"
    )


def pretrain_config(config):
    """The PSNR stage: the same model, task and data; L1 only; no discriminator; its own folder."""
    stage = copy.deepcopy(config)
    stage.losses = {"l1": 1.0}
    stage.discriminator.name = None
    stage.output.dir = str(Path(config.output.dir) / "pretrain")
    return stage


def main(argv: list[str] | None = None):
    config, args = parse_recipe_args(argv, CONFIG, __doc__.splitlines()[0], extra=_options)
    if config.model.weights is None and args.pretrain_steps > 0:
        stage = pretrain_config(config)
        stage.train.steps = args.pretrain_steps
        weights = Path(stage.output.dir) / "model.safetensors"
        if not weights.is_file():
            run_config(stage)
        config.model.weights = str(weights)
    return run_config(config)


if __name__ == "__main__":
    main(sys.argv[1:])
