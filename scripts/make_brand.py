"""Draw the Rayzig brand images used by Home Assistant 2026.3+ (and HACS).

Writes into ``custom_components/rayzig/brand/``:

* ``icon.png`` 256x256 and ``icon@2x.png`` 512x512: an amber lightning bolt in a
  blue rounded square, transparent outside the square;
* ``logo.png`` (256 px high) and ``logo@2x.png`` (512 px high, twice as wide): the icon
  followed by the word "RAYZIG" drawn from straight strokes and arcs (no font file
  needed, so the output does not depend on the fonts installed on the machine).

Everything is plain geometry: shapes are drawn at 8x and downscaled with Lanczos
for anti-aliasing, so running the script again gives the same pictures.

Usage: ``.venv/bin/python scripts/make_brand.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

Point = tuple[float, float]

SUPERSAMPLE = 8
BLUE = (31, 94, 196, 255)  # #1F5EC4, the square and the word
BLUE_DARK = (20, 63, 140, 255)  # #143F8C, the bolt's shadow
AMBER = (255, 196, 46, 255)  # #FFC42E, the bolt
TRANSPARENT = (0, 0, 0, 0)

# The bolt, in units of the square's side (0..1, y grows downwards).
BOLT: tuple[Point, ...] = (
    (0.575, 0.115),
    (0.285, 0.555),
    (0.470, 0.555),
    (0.405, 0.885),
    (0.725, 0.430),
    (0.535, 0.430),
    (0.655, 0.115),
)
CORNER_RADIUS = 0.225
SHADOW_OFFSET = (0.022, 0.030)

# Letters as strokes: lists of polylines in units of the cap height (y down).
# Each letter also has an advance width (its own width, spacing added later).
LETTER_GAP = 0.34
STROKE = 0.17


def _arc(centre: Point, rx: float, ry: float, *, start: float, end: float) -> list[Point]:
    """Points on an elliptical arc; angles in degrees, counter-clockwise as on paper."""
    cx, cy = centre
    steps = max(8, int(abs(end - start) / 4))
    points = []
    for i in range(steps + 1):
        t = math.radians(start + (end - start) * i / steps)
        points.append((cx + rx * math.cos(t), cy - ry * math.sin(t)))
    return points


def _letters() -> dict[str, tuple[float, list[list[Point]]]]:
    bowl = _arc((0.36, 0.26), 0.26, 0.26, start=90, end=-90)
    return {
        "R": (
            0.66,
            [
                [(0.0, 1.0), (0.0, 0.0), (0.36, 0.0), *bowl[1:-1], (0.36, 0.52), (0.0, 0.52)],
                [(0.30, 0.52), (0.66, 1.0)],
            ],
        ),
        "A": (0.76, [[(0.0, 1.0), (0.38, 0.0), (0.76, 1.0)], [(0.15, 0.64), (0.61, 0.64)]]),
        "Y": (0.74, [[(0.0, 0.0), (0.37, 0.52), (0.74, 0.0)], [(0.37, 0.52), (0.37, 1.0)]]),
        "Z": (0.66, [[(0.0, 0.0), (0.66, 0.0), (0.0, 1.0), (0.66, 1.0)]]),
        "I": (0.0, [[(0.0, 0.0), (0.0, 1.0)]]),
        "G": (
            0.84,
            [[*_arc((0.42, 0.5), 0.42, 0.5, start=42, end=360), (0.47, 0.5)]],
        ),
    }


def _scaled(points: Sequence[Point], scale: float, dx: float = 0, dy: float = 0) -> list[Point]:
    return [(dx + x * scale, dy + y * scale) for x, y in points]


def _draw_icon(draw: ImageDraw.ImageDraw, x: float, y: float, side: float) -> None:
    """Draw the icon with its top-left corner at (x, y) on a supersampled canvas."""
    draw.rounded_rectangle(
        (x, y, x + side - 1, y + side - 1), radius=CORNER_RADIUS * side, fill=BLUE
    )
    sx, sy = SHADOW_OFFSET
    draw.polygon(_scaled(BOLT, side, x + sx * side, y + sy * side), fill=BLUE_DARK)
    draw.polygon(_scaled(BOLT, side, x, y), fill=AMBER)


def _stroke(draw: ImageDraw.ImageDraw, line: Sequence[Point], width: float) -> None:
    """Draw a polyline of constant width with round joints and round caps.

    Each segment is a rectangle and each vertex a disc of the same diameter, which
    is exact geometry (Pillow's own wide lines are not uniform at large widths).
    """
    r = width / 2
    for (x0, y0), (x1, y1) in itertools.pairwise(line):
        length = math.hypot(x1 - x0, y1 - y0)
        if length == 0:
            continue
        nx, ny = -(y1 - y0) / length * r, (x1 - x0) / length * r
        draw.polygon(
            [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)],
            fill=BLUE,
        )
    for px, py in line:
        draw.ellipse((px - r, py - r, px + r, py + r), fill=BLUE)


def _word_width(word: str, letters: dict[str, tuple[float, list[list[Point]]]]) -> float:
    """Width of the word in cap heights, from the first stroke's centre to the last's."""
    return sum(letters[c][0] for c in word) + LETTER_GAP * (len(word) - 1)


def _downscale(canvas: Image.Image) -> Image.Image:
    width, height = canvas.size
    return canvas.resize((width // SUPERSAMPLE, height // SUPERSAMPLE), Image.Resampling.LANCZOS)


def make_icon(size: int) -> Image.Image:
    """Return the square icon, ``size`` pixels a side."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGBA", (big, big), TRANSPARENT)
    _draw_icon(ImageDraw.Draw(canvas), 0, 0, big)
    return _downscale(canvas)


def make_logo(height: int, word: str = "RAYZIG") -> Image.Image:
    """Return the icon followed by the word, ``height`` pixels high, no margins.

    The width is proportional to ``height`` (rounded to whole pixels the same way
    for every height), so ``make_logo(2 * h)`` is exactly twice ``make_logo(h)``.
    """
    letters = _letters()
    cap = 0.46  # in units of the height
    stroke = STROKE * cap
    text_left = 1.16 + stroke / 2
    ratio = text_left + _word_width(word, letters) * cap + stroke / 2
    width = math.ceil(ratio * 128) * height // 128
    big = height * SUPERSAMPLE
    canvas = Image.new("RGBA", (width * SUPERSAMPLE, big), TRANSPARENT)
    draw = ImageDraw.Draw(canvas)
    _draw_icon(draw, 0, 0, big)
    x = text_left * big
    top = (1 - cap) / 2 * big
    for char in word:
        advance, lines = letters[char]
        for line in lines:
            _stroke(draw, _scaled(line, cap * big, x, top), stroke * big)
        x += (advance + LETTER_GAP) * cap * big
    return _downscale(canvas)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the four brand images."""
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out",
        type=Path,
        default=root / "custom_components" / "rayzig" / "brand",
        help="output folder (default: custom_components/rayzig/brand)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    images = {
        "icon.png": make_icon(256),
        "icon@2x.png": make_icon(512),
        "logo.png": make_logo(256),
        "logo@2x.png": make_logo(512),
    }
    for name, image in images.items():
        image.save(out / name, optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
