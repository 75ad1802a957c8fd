"""LaMa-style inpainting: masked L1, perceptual, adversarial (PatchGAN), feature matching and R1.

accelerate launch recipes/inpaint.py                 # a quick run on the bundled sample images
accelerate launch recipes/inpaint.py --data DIR --model.name lama --data.patch_size 256
"""

from __future__ import annotations

import sys
from pathlib import Path

from restore.train.recipe import parse_recipe_args, run_config

CONFIG = Path(__file__).resolve().parent / "configs" / "inpaint.yaml"


def main(argv: list[str] | None = None):
    config, _ = parse_recipe_args(argv, CONFIG, __doc__.splitlines()[0])
    return run_config(config)


if __name__ == "__main__":
    main(sys.argv[1:])
