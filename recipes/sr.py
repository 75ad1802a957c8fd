"""PSNR-oriented super-resolution (L1 on bicubic pairs by default).

accelerate launch recipes/sr.py                      # a quick run on the bundled sample images
accelerate launch recipes/sr.py --data DIR --val Set5 --model.name rrdbnet --train.steps 1000000
python recipes/sr.py --resume latest                 # continue the newest checkpoint
"""

from __future__ import annotations

import sys
from pathlib import Path

from restore.train.recipe import parse_recipe_args, run_config

CONFIG = Path(__file__).resolve().parent / "configs" / "sr.yaml"


def main(argv: list[str] | None = None):
    config, _ = parse_recipe_args(argv, CONFIG, __doc__.splitlines()[0])
    return run_config(config)


if __name__ == "__main__":
    main(sys.argv[1:])
