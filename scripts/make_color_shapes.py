"""Generate a small colour image data set whose classes differ by colour AND shape.

Usage::

    python scripts/make_color_shapes.py /tmp/shapes [--train-per-class 600]
        [--test-per-class 150] [--min-size 28] [--max-size 48] [--seed 0] [--force]

Six classes, two per colour and two per shape, so that neither colour alone nor
shape alone separates them (a grayscale or colour-blind model cannot reach 100%)::

    red_circle  red_square  green_circle  green_triangle  blue_square  blue_triangle

Each image is an RGB PNG of a random size (side drawn from ``--min-size`` ..
``--max-size``, the width a few pixels off the height, so loading has to
resize and the shapes get slightly stretched), a noisy background (a random
dark-to-mid grey level with per-pixel Gaussian noise and a faint random tint),
and one filled shape at a random position (fully inside the image), random
size (35-70% of the shorter side) and, for squares and triangles, random
rotation. The colour's hue is jittered by up to +-``--hue-jitter`` degrees
(default 15) around 0 (red), 120 (green) and 240 (blue), with random
saturation (0.65-1) and value (0.7-1); pixel noise is also added on the shape.

Written to ``OUT/train/<class>/<i>.png`` and ``OUT/test/<class>/<i>.png``,
seeded (the same ``--seed`` gives the same bytes), via ``OUT.tmp`` renamed to
``OUT`` at the end; rerunning with the same options on a complete ``OUT`` does
nothing (a hidden ``OUT/.make_color_shapes.json`` records the options).
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = (("red", "circle"), ("red", "square"), ("green", "circle"),
           ("green", "triangle"), ("blue", "square"), ("blue", "triangle"))
HUES = {"red": 0.0, "green": 120.0, "blue": 240.0}
MANIFEST = ".make_color_shapes.json"
SUPERSAMPLE = 4  # shapes are drawn at 4x and downsampled: anti-aliased edges


def class_name(color: str, shape: str) -> str:
    return f"{color}_{shape}"


def _shape_color(rng: np.random.Generator, color: str, hue_jitter: float) -> tuple[int, ...]:
    hue = (HUES[color] + rng.uniform(-hue_jitter, hue_jitter)) % 360.0
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _polygon(shape: str, cx: float, cy: float, radius: float, angle: float
             ) -> list[tuple[float, float]]:
    corners = 4 if shape == "square" else 3
    return [(cx + radius * math.cos(angle + 2 * math.pi * k / corners),
             cy + radius * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)]


def make_image(rng: np.random.Generator, color: str, shape: str, min_size: int, max_size: int,
               hue_jitter: float) -> Image.Image:
    """One RGB image of a ``color`` ``shape`` on a noisy background."""
    h = int(rng.integers(min_size, max_size + 1))
    w = int(np.clip(h + rng.integers(-4, 5), min_size, max_size))
    # background: grey level, faint tint, per-pixel noise
    level = rng.uniform(20, 120)
    tint = rng.normal(0, 8, size=3)
    bg = level + tint + rng.normal(0, rng.uniform(5, 20), size=(h, w, 3))
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    # the shape, drawn on a supersampled mask
    s = SUPERSAMPLE
    side = min(h, w)
    radius = rng.uniform(0.35, 0.70) * side / 2  # circumradius (circle: radius)
    if shape == "triangle":
        radius *= 1.15  # similar area to the square
    margin = radius + 1
    cx = rng.uniform(margin, w - margin) if w > 2 * margin else w / 2
    cy = rng.uniform(margin, h - margin) if h > 2 * margin else h / 2
    mask = Image.new("L", (w * s, h * s), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([(cx - radius) * s, (cy - radius) * s, (cx + radius) * s,
                      (cy + radius) * s], fill=255)
    else:
        angle = rng.uniform(0, 2 * math.pi)
        draw.polygon([(px * s, py * s) for px, py in _polygon(shape, cx, cy, radius, angle)],
                     fill=255)
    mask = mask.resize((w, h), Image.Resampling.BOX)
    fg = np.asarray(_shape_color(rng, color, hue_jitter), dtype=np.float64)
    fg_pixels = fg + rng.normal(0, 6, size=(h, w, 3))
    fill = Image.fromarray(np.clip(fg_pixels, 0, 255).astype(np.uint8), "RGB")
    canvas.paste(fill, (0, 0), mask)
    return canvas


def generate(out: Path, train_per_class: int, test_per_class: int, min_size: int,
             max_size: int, hue_jitter: float, seed: int, force: bool) -> Path:
    options = {"version": 1, "train_per_class": train_per_class,
               "test_per_class": test_per_class, "min_size": min_size, "max_size": max_size,
               "hue_jitter": hue_jitter, "seed": seed,
               "classes": [class_name(c, s) for c, s in CLASSES]}
    if out.exists() and not force:
        try:
            if json.loads((out / MANIFEST).read_text()) == options:
                print(f"{out}: already complete with these options; nothing to do")
                return out
        except (OSError, ValueError):
            pass
        raise SystemExit(f"{out}: exists with other options or incomplete; use --force")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.perf_counter()
    root_rng = np.random.default_rng(seed)
    # one independent stream per (part, class): adding classes or images keeps the others
    streams = root_rng.spawn(2 * len(CLASSES))
    n = 0
    for p, (part, count) in enumerate((("train", train_per_class), ("test", test_per_class))):
        for c, (color, shape) in enumerate(CLASSES):
            rng = streams[p * len(CLASSES) + c]
            folder = tmp / part / class_name(color, shape)
            folder.mkdir(parents=True)
            for i in range(count):
                make_image(rng, color, shape, min_size, max_size, hue_jitter).save(
                    folder / f"{i:05d}.png")
                n += 1
    (tmp / MANIFEST).write_text(json.dumps(options, indent=2))
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)
    print(f"{out}: wrote {n} PNGs ({train_per_class} train + {test_per_class} test per class, "
          f"{len(CLASSES)} classes, {min_size}..{max_size} px) in "
          f"{time.perf_counter() - t0:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--train-per-class", type=int, default=600)
    p.add_argument("--test-per-class", type=int, default=150)
    p.add_argument("--min-size", type=int, default=28)
    p.add_argument("--max-size", type=int, default=48)
    p.add_argument("--hue-jitter", type=float, default=15.0, help="degrees (default 15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    if not 8 <= a.min_size <= a.max_size:
        p.error("need 8 <= --min-size <= --max-size")
    if a.train_per_class < 1 or a.test_per_class < 1:
        p.error("need at least one image per class in each part")
    generate(a.out.expanduser().resolve(), a.train_per_class, a.test_per_class, a.min_size,
             a.max_size, a.hue_jitter, a.seed, a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
