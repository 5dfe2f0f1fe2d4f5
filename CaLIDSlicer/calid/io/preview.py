"""PNG previews that show what reconstruction did: long-axis cuts through the stack.

A short-axis slice looks the same whatever the slice spacing; the gain from dense
reconstruction shows across slices, so the preview cuts the stack along its long axis
(one image column through every slice), stretched to true physical proportions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calid.io.volume import Volume


def _to_uint8(image: np.ndarray, scale: float) -> np.ndarray:
    return (np.clip(image / scale, 0.0, 1.0) * 255).astype(np.uint8)


def long_axis_cut(volume: Volume, column: int | None = None, frame: int = 0, keep: float = 0.5) -> np.ndarray:
    """(Z, Y) image through column ``column`` (default: the middle), central ``keep`` of Y, as float.

    The heart sits near the centre of a short-axis field of view, so the central part of
    the cut is where the slices differ; the rest is chest wall and background.
    """
    stack = volume.frame(frame).array.astype(np.float32)
    column = stack.shape[2] // 2 if column is None else column
    rows = stack.shape[1]
    start = int(rows * (1 - keep) / 2)
    return stack[:, start : rows - start, column]


def _stretch(cut: np.ndarray, volume: Volume, height_mm_per_px: float) -> "Image.Image":
    from PIL import Image

    rows = max(1, round(cut.shape[0] * volume.slice_spacing / height_mm_per_px))
    cols = max(1, round(cut.shape[1] * volume.spacing[1] / height_mm_per_px))
    # Nearest rows: each slice shows as a band as thick as its spacing (no hidden smoothing).
    return Image.fromarray(cut).resize((cols, rows), Image.Resampling.NEAREST)


def save_preview(panels: list[tuple[str, Volume]], path: Path, frame: int = 0) -> Path:
    """Side-by-side long-axis cuts of several volumes with titles, written atomically."""
    from PIL import Image, ImageDraw

    from calid.io.paths import atomic_path

    first = panels[0][1]
    scale = float(np.percentile(first.frame(frame).array, 99.5)) or 1.0
    mm_per_px = min(first.spacing[0], first.spacing[1]) / 2  # twice the acquired in-plane resolution
    images = [(title, _stretch(_to_uint8(long_axis_cut(v, frame=frame), scale), v, mm_per_px)) for title, v in panels]
    width = sum(img.width for _, img in images) + 8 * (len(images) + 1)
    height = max(img.height for _, img in images) + 28
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    x = 8
    for title, img in images:
        canvas.paste(img, (x, 24))
        draw.text((x, 6), title, fill=255)
        x += img.width + 8
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
