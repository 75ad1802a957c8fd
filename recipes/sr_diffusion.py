"""Diffusion restoration (SR3): a conditional denoiser trained with the diffusion loss, sampled with DDIM.

accelerate launch recipes/sr_diffusion.py            # a quick run on the bundled sample images
accelerate launch recipes/sr_diffusion.py --data DIR --val Set5 --model.name sr3_x4 --train.steps 500000
python recipes/sr_diffusion.py --config recipes/configs/inpaint_diffusion.yaml   # mask-conditional inpainting
"""

from __future__ import annotations

import sys
from pathlib import Path

from restore.train.recipe import parse_recipe_args, run_config

CONFIG = Path(__file__).resolve().parent / "configs" / "sr_diffusion.yaml"


def main(argv: list[str] | None = None):
    config, _ = parse_recipe_args(argv, CONFIG, __doc__.splitlines()[0])
    return run_config(config)


if __name__ == "__main__":
    main(sys.argv[1:])
