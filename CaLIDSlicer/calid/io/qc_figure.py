"""The QC figure written beside every reconstruction: what was measured, what was synthesised.

A reader must see at a glance which slices are real and whether the synthesised ones
look like them. The figure has a short-axis row (consecutive slices around the middle,
each framed and labelled *acquired* or *synthesised*), optionally the truth at the same
slices (the demo), and a long-axis row: a locator slice with the two cut lines, the cut
along x and the cut along y drawn at true physical proportions (slice spacing vs pixel
size, so a sparse stack shows as thick bands), slice positions ticked in the margin, and
the uncertainty map when there is one. A cine shows one frame, named in the title.

Rendering happens in memory (:func:`render_qc_figure`), so a caller can draw the figure
before it writes any output and then write everything together (:func:`write_qc_figure`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calid.io.volume import Volume

#: A colour-blind-safe pair (blue / orange); the labels say the same in words.
ACQUIRED_COLOUR = "#1a85ff"
SYNTHESISED_COLOUR = "#e66100"
CUT_X_COLOUR, CUT_Y_COLOUR = "#00c8c8", "#ffd700"
WIDTH_IN, DPI = 16.0, 100  # 1600 px wide
MAX_SHORT_AXIS = 8
CROP_MM = 180.0  # in-plane field shown: the heart and its surroundings, not the whole chest


@dataclass(frozen=True)
class QCPanel:
    """One image of the figure; ``box`` is (left, top, right, bottom) in PNG pixels."""

    kind: str  # "acquired", "synthesised", "truth", "locator", "long-axis", "uncertainty"
    title: str
    box: tuple[int, int, int, int]
    slice_index: int | None = None


@dataclass(frozen=True)
class QCFigure:
    """A rendered figure: PNG bytes, its size and what each panel shows."""

    png: bytes
    size: tuple[int, int]  # (width, height) in pixels
    frame: int
    panels: tuple[QCPanel, ...]

    @property
    def synthesised_slices(self) -> tuple[int, ...]:
        """Slice indices of the short-axis panels framed as synthesised."""
        return tuple(p.slice_index for p in self.panels if p.kind == "synthesised")


def qc_path(output: Path) -> Path:
    """``dense.nii.gz`` -> ``dense.qc.png`` beside it."""
    from calid.io.paths import compound_suffix

    output = Path(output)
    suffix = compound_suffix(output)
    stem = output.name[: -len(suffix)] if suffix else output.name
    return output.with_name(stem + ".qc.png")


def centre_from_labels(labels: Volume, frame: int = 0) -> tuple[float, float] | None:
    """(y, x) centroid of every labelled pixel of one frame: the heart, when the labels are cardiac."""
    mask = labels.frame(min(frame, labels.n_frames - 1)).array > 0
    if not mask.any():
        return None
    _, y, x = np.nonzero(mask)
    return float(y.mean()), float(x.mean())


def _frame_array(volume: Volume, frame: int) -> np.ndarray:
    return volume.frame(frame).array.astype(np.float32)


def _window(volume: Volume, centre: tuple[float, float]) -> tuple[slice, slice]:
    """Rows/columns of a CROP_MM square around ``centre`` (y, x in pixels), kept inside the image."""
    out = []
    for axis, spacing in ((0, volume.spacing[1]), (1, volume.spacing[0])):
        size = volume.slice_shape[axis]
        half = min(size, max(1, round(CROP_MM / spacing))) / 2
        start = int(round(min(max(centre[axis] - half, 0), size - 2 * half)))
        out.append(slice(start, start + int(2 * half)))
    return out[0], out[1]


def _short_axis_slices(volume: Volume) -> list[int]:
    """Up to MAX_SHORT_AXIS consecutive slices around the middle, starting on an acquired one."""
    count = min(volume.n_slices, MAX_SHORT_AXIS)
    wanted = max(0, (volume.n_slices - count) // 2)
    acquired = [i for i in volume.acquired if i <= volume.n_slices - count] or [wanted]
    start = min(acquired, key=lambda i: abs(i - wanted))
    return list(range(start, start + count))


def _frame_spines(ax, colour: str, width: float = 4.0) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)
    ax.set_xticks([])
    ax.set_yticks([])


def _extent(rows: slice, cols: slice, row_mm: float, col_mm: float) -> list[float]:
    """imshow extent in mm for a crop (pixel edges, so each pixel keeps its true size)."""
    return [cols.start * col_mm, cols.stop * col_mm, rows.stop * row_mm, rows.start * row_mm]


def _slice_strip(ax, volume: Volume) -> None:
    """A strip right of a long-axis cut, one cell per slice: blue acquired, orange synthesised."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    synthesised = set(volume.synthesized)
    where = blended_transform_factory(ax.transAxes, ax.transData)
    for z in range(volume.n_slices):
        colour = SYNTHESISED_COLOUR if z in synthesised else ACQUIRED_COLOUR
        ax.add_patch(Rectangle((1.01, z * volume.slice_spacing), 0.035, volume.slice_spacing, transform=where,
                               facecolor=colour, edgecolor="white", linewidth=0.3, clip_on=False))


def _cut(ax, image: np.ndarray, extent: list[float], title: str, colour: str, long_axis: bool, **style) -> None:
    ax.imshow(image, extent=extent, interpolation="nearest", aspect="equal", **style)
    ax.set_title(title, fontsize=10, color=colour)
    ax.set_xlabel("mm", fontsize=8)
    ax.set_ylabel("slice axis (mm)" if long_axis else "mm", fontsize=8)
    ax.tick_params(labelsize=7)


def render_qc_figure(volume: Volume, *, title: str, frame: int = 0, uncertainty: Volume | None = None,
                     truth: Volume | None = None, centre: tuple[float, float] | None = None,
                     centre_note: str = "") -> QCFigure:
    """Draw the QC figure of ``volume`` (frame ``frame`` of a cine) in memory.

    ``centre`` (y, x in pixels) places the crop and the long-axis cuts, e.g. the heart's centre
    (:func:`centre_from_labels` of a segmentation), and ``centre_note`` says which, for the
    locator's title; without it the image centre is used. ``truth`` (same grid) adds a
    truth row and a truth cut (the demo); ``uncertainty`` adds a row: one synthesised
    slice of it and its two long-axis cuts, under the image's.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    if truth is not None and truth.array.shape[-3:] != volume.array.shape[-3:]:
        raise ValueError(f"truth shape {truth.array.shape} does not match the volume's {volume.array.shape}")
    if not 0 <= frame < volume.n_frames:
        raise ValueError(f"frame {frame} is outside the volume's {volume.n_frames} frames")
    image = _frame_array(volume, frame)
    if centre is None:
        centre, centre_note = ((volume.slice_shape[0] - 1) / 2, (volume.slice_shape[1] - 1) / 2), "image centre"
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    rows, cols = _window(volume, centre)
    acquired = image[list(volume.acquired)] if volume.acquired else image
    lo, hi = (float(v) for v in np.percentile(acquired, [0.5, 99.5]))
    grey = {"cmap": "gray", "vmin": lo, "vmax": hi if hi > lo else lo + 1}
    sx, sy, sz = volume.spacing
    sa_extent = _extent(rows, cols, sy, sx)
    la_y = [rows.start * sy, rows.stop * sy, volume.n_slices * sz, 0.0]  # (slice, y) cut at column cx
    la_x = [cols.start * sx, cols.stop * sx, volume.n_slices * sz, 0.0]  # (slice, x) cut at row cy

    # Panels: (kind, title, image, extent, title colour, imshow style, is a long-axis cut, slice index)
    long_axis = [("long-axis", f"cut along y at x = {cx} (cyan line)", image[:, rows, cx], la_y, CUT_X_COLOUR, grey, True, None),
                 ("long-axis", f"cut along x at y = {cy} (yellow line)", image[:, cy, cols], la_x, CUT_Y_COLOUR, grey, True, None)]
    if truth is not None:
        long_axis.append(("truth", "truth, cut along y", _frame_array(truth, frame)[:, rows, cx], la_y, "black", grey, True, None))
    spread_row = []
    if uncertainty is not None:
        spread = _frame_array(uncertainty, frame)
        heat = {"cmap": "magma", "vmin": 0.0, "vmax": float(np.percentile(spread, 99.5)) or 1.0}
        synthesised = volume.synthesized or (volume.n_slices // 2,)
        z = min(synthesised, key=lambda i: abs(i - volume.n_slices / 2))
        spread_row = [("uncertainty", f"uncertainty (SD over samples), slice {z}", spread[z, rows, cols], sa_extent,
                       "black", heat, False, z),
                      ("uncertainty", "uncertainty, cut along y", spread[:, rows, cx], la_y, "black", heat, True, None),
                      ("uncertainty", "uncertainty, cut along x", spread[:, cy, cols], la_x, "black", heat, True, None)]

    columns = max(len(long_axis), len(spread_row) - 1) + 1  # + the locator
    sa_h = WIDTH_IN / MAX_SHORT_AXIS * 1.2
    la_ratio = max((e[2] - e[3]) / max(e[1] - e[0], 1e-6) for _, _, _, e, *_ in long_axis)
    la_h = float(np.clip(WIDTH_IN / columns * la_ratio, 2.4, 7.0)) + 0.6
    heights = [sa_h] * (2 if truth is not None else 1) + [la_h] * (2 if spread_row else 1)
    total = sum(heights) + 1.0
    fig = Figure(figsize=(WIDTH_IN, round(total * DPI) / DPI), dpi=DPI)  # whole pixels
    fig.suptitle(title, fontsize=13, y=1 - 0.25 / total)
    fig.text(0.5, 1 - 0.62 / total,
             "blue frame: acquired slice (measured, unchanged)   ·   orange frame: synthesised slice   ·   "
             "the strip beside each long-axis cut shows every slice in the same colours", ha="center", fontsize=10)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, top=1 - 0.9 / total,
                            bottom=0.4 / total, left=0.03, right=0.97, hspace=0.3)
    drawn = _short_axis_row(fig, grid[0], volume, image, rows, cols, grey, False)
    if truth is not None:
        drawn += _short_axis_row(fig, grid[1], volume, _frame_array(truth, frame), rows, cols, grey, True)
    la_cells = grid[len(heights) - (2 if spread_row else 1)].subgridspec(1, columns, wspace=0.3)
    locator_z = min(volume.acquired or (0,), key=lambda z: abs(z - volume.n_slices / 2))
    ax = fig.add_subplot(la_cells[0, 0])
    ax.imshow(image[locator_z], extent=[0, volume.slice_shape[1] * sx, volume.slice_shape[0] * sy, 0],
              interpolation="nearest", **grey)
    ax.axvline((cx + 0.5) * sx, color=CUT_X_COLOUR, linestyle="--", linewidth=1.5)
    ax.axhline((cy + 0.5) * sy, color=CUT_Y_COLOUR, linestyle="--", linewidth=1.5)
    ax.add_patch(_crop_box(rows, cols, sy, sx))
    ax.set_title(f"slice {locator_z} (acquired): the cut lines,\nthrough the {centre_note}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    drawn.append(("locator", "locator", ax, locator_z))
    placed = [(la_cells[0, c], panel) for c, panel in enumerate(long_axis, start=1)]
    if spread_row:
        spread_cells = grid[len(heights) - 1].subgridspec(1, columns, wspace=0.3)
        placed += [(spread_cells[0, c], panel) for c, panel in enumerate(spread_row)]
    for cell, (kind, label, cut, extent, colour, style, long_cut, z) in placed:
        ax = fig.add_subplot(cell)
        _cut(ax, cut, extent, label, colour, long_cut, **style)
        if long_cut:
            _slice_strip(ax, volume)
        drawn.append((kind, label, ax, z))
    if spread_row:
        fig.colorbar(drawn[-1][2].images[0], ax=[d[2] for d in drawn[-3:]], fraction=0.02, pad=0.03,
                     label="SD (image units)")

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # no tight bbox: the size (and panel boxes) stay as laid out
    width, height = fig.canvas.get_width_height()
    panels = tuple(QCPanel(kind, label, _box(ax, height), z) for kind, label, ax, z in drawn)
    return QCFigure(buffer.getvalue(), (width, height), frame, panels)


def _short_axis_row(fig, cell, volume: Volume, source: np.ndarray, rows: slice, cols: slice, grey: dict,
                    is_truth: bool) -> list:
    """Consecutive short-axis slices, each framed and titled acquired / synthesised (or truth)."""
    cells = cell.subgridspec(1, MAX_SHORT_AXIS, wspace=0.08)
    drawn = []
    for column, z in enumerate(_short_axis_slices(volume)):
        ax = fig.add_subplot(cells[0, column])
        ax.imshow(source[z, rows, cols], extent=_extent(rows, cols, volume.spacing[1], volume.spacing[0]),
                  interpolation="nearest", **grey)
        kind = "truth" if is_truth else ("synthesised" if z in volume.synthesized else "acquired")
        colour = {"truth": "black", "synthesised": SYNTHESISED_COLOUR, "acquired": ACQUIRED_COLOUR}[kind]
        label = f"slice {z}: {kind}"
        ax.set_title(label, fontsize=10, color=colour, fontweight="bold")
        _frame_spines(ax, colour, 1.0 if is_truth else 4.0)
        drawn.append((kind, label, ax, z))
    return drawn


def _crop_box(rows: slice, cols: slice, row_mm: float, col_mm: float):
    from matplotlib.patches import Rectangle

    return Rectangle((cols.start * col_mm, rows.start * row_mm), (cols.stop - cols.start) * col_mm,
                     (rows.stop - rows.start) * row_mm, fill=False, edgecolor="white", linewidth=0.8, linestyle=":")


def _box(ax, height: int) -> tuple[int, int, int, int]:
    """The axes' drawn area in PNG pixels (matplotlib counts y from the bottom)."""
    bbox = ax.get_window_extent()
    return (int(round(bbox.x0)), int(round(height - bbox.y1)), int(round(bbox.x1)), int(round(height - bbox.y0)))


def write_qc_figure(figure: QCFigure, path: Path) -> Path:
    """Write a rendered figure atomically (whole or not at all)."""
    from calid.io.paths import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(figure.png)
    return Path(path)


def figure_title(method: str, factor: int, volume: Volume, frame: int, name: str = "") -> str:
    """``NAME: METHOD x4, 37 slices (10 acquired), 2.5 mm; cine frame 1 of 30 (first frame)``."""
    head = f"{name}: " if name else ""
    text = (f"{head}{method} x{factor}, {volume.n_slices} slices ({len(volume.acquired)} acquired, "
            f"{len(volume.synthesized)} synthesised), slice spacing {volume.slice_spacing:g} mm, "
            f"pixel {volume.spacing[0]:.2g} x {volume.spacing[1]:.2g} mm")
    if volume.is_cine:
        which = " (first frame)" if frame == 0 else ""
        text += f"; cine frame {frame + 1} of {volume.n_frames}{which}"
    return text
