"""Picture of a few dataset items: images on the top row, colour-coded masks below (Pillow only).

Regenerate the documentation figure with::

    python -m hamburger.recipes.seg.data.preview docs/img/fashion_scenes.png
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch

from ._io import IGNORE_INDEX


def colorize(mask: torch.Tensor, palette: torch.Tensor) -> np.ndarray:
    """``int64 (H, W)`` mask to ``uint8 (H, W, 3)`` colours; 255 (ignore) is white."""
    table = np.full((256, 3), 255, dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.asarray(mask).clip(0, IGNORE_INDEX)]


def scene_grid(dataset, indices: Sequence[int], *, zoom: int = 3, gap: int = 4):
    """A ``PIL.Image`` with ``dataset[i]["image"]`` above the coloured ``dataset[i]["mask"]`` per column.

    The dataset must have no transform (``uint8`` images).
    """
    from PIL import Image

    columns = []
    for index in indices:
        item = dataset[index]
        image = item["image"].permute(1, 2, 0).numpy()
        mask = colorize(item["mask"], dataset.palette)
        columns.append(np.concatenate([image, np.full((gap, image.shape[1], 3), 255, np.uint8), mask], axis=0))
    height = max(c.shape[0] for c in columns)
    canvas = np.full((height, sum(c.shape[1] + gap for c in columns) - gap, 3), 255, dtype=np.uint8)
    x = 0
    for column in columns:
        canvas[: column.shape[0], x : x + column.shape[1]] = column
        x += column.shape[1] + gap
    picture = Image.fromarray(canvas)
    return picture.resize((picture.width * zoom, picture.height * zoom), Image.Resampling.NEAREST)


def save_fashion_preview(path: str, *, count: int = 6) -> None:
    """Write the docs figure: ``count`` scenes of each variant (plain, context, consensus; a pair of
    rows each: images above masks)."""
    from PIL import Image

    from .fashion_scenes import FashionScenes

    rows = [
        scene_grid(FashionScenes("val", num_scenes=count, variant=variant), range(count))
        for variant in ("plain", "context", "consensus")
    ]
    gap = 24
    height = sum(r.height for r in rows) + gap * (len(rows) - 1)
    figure = Image.new("RGB", (max(r.width for r in rows), height), "white")
    top = 0
    for row in rows:
        figure.paste(row, (0, top))
        top += row.height + gap
    figure.save(path, optimize=True)


if __name__ == "__main__":
    save_fashion_preview(sys.argv[1] if len(sys.argv) > 1 else "fashion_scenes.png")
