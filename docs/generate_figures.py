"""Regenerate the figures in docs/figures/ with archcost's own CLI:

    python docs/generate_figures.py

- docs/figures/bubble.png: ``archcost plot bubble`` over every zoo model with an ImageNet top-1
  accuracy in archcost/data/accuracy.csv (the set grows as families join the zoo).
- docs/figures/vgg16_layers.png: ``archcost plot layers vgg16``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archcost import cli  # noqa: E402

FIGURES = ROOT / "docs" / "figures"
COMMANDS = (
    ["plot", "bubble", "-o", str(FIGURES / "bubble.png")],
    ["plot", "layers", "vgg16", "-o", str(FIGURES / "vgg16_layers.png")],
)


def main() -> int:
    FIGURES.mkdir(parents=True, exist_ok=True)
    for argv in COMMANDS:
        code = cli.main(argv)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
