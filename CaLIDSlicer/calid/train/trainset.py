"""A compact training set for a machine without SimpleITK: heart crops as uint8 in one ``.npz``.

A lent GPU machine takes at most 64 MiB of files and has no NIfTI reader, so
:func:`export_trainset` reads the stacks of the chosen splits once here, normalises each
like :func:`calid.train.data.read_stacks` (divided by its 99.5th percentile, clipped to
[0, CLIP_MAX]), crops a square around the heart (the label map's centre where a
``*_gt.nii.gz`` lies beside the image, else the image centre), quantises to uint8 and writes
``slices.npz`` plus a JSON manifest. :func:`load_trainset` turns it back into the
:class:`~calid.train.stack.Stack` list the trainers use. Derived from ACDC: never committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from calid.models.preprocess import CLIP_MAX, intensity_scale, normalise
from calid.evaluation.splits import split_of
from calid.train.stack import Stack

MANIFEST = "trainset.json"
ARRAYS = "slices.npz"
FORMAT = "calid-trainset"
#: uint8 step in normalised units (1.0 = the 99.5th percentile): 0.0078, noise std 0.0023 (about 53 dB).
QUANTUM = CLIP_MAX / 255.0


def is_trainset(folder: str | Path) -> bool:
    """True for a folder written by :func:`export_trainset`."""
    return (Path(folder) / MANIFEST).is_file()


def image_files(folders: Iterable[str | Path]) -> list[Path]:
    """Images (not label maps) in each folder and its direct subfolders, sorted."""
    found: list[Path] = []
    for folder in map(Path, folders):
        for place in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
            found += [p for p in sorted(place.glob("*.nii.gz")) if "_gt" not in p.name and "mask" not in p.name]
    return found


def heart_centre(image: Path, shape: tuple[int, int]) -> tuple[int, int]:
    """(row, column) of the labelled heart's bounding-box centre, from ``<name>_gt.nii.gz``; else the image centre."""
    labels = image.with_name(image.name.replace(".nii.gz", "_gt.nii.gz"))
    if labels.is_file():
        import SimpleITK as sitk

        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(labels))) > 0
        if mask.shape[-2:] == shape and mask.any():
            rows, cols = np.nonzero(mask.reshape(-1, *shape).any(axis=0))
            return (int(rows.min() + rows.max()) // 2, int(cols.min() + cols.max()) // 2)
    return shape[0] // 2, shape[1] // 2


def crop_square(slices: np.ndarray, centre: tuple[int, int], size: int) -> np.ndarray:
    """(Z, size, size) around ``centre``, shifted inside the image; zero-padded where the image is smaller."""
    out = np.zeros((slices.shape[0], size, size), slices.dtype)
    spans = []
    for middle, length in zip(centre, slices.shape[-2:]):
        start = min(max(0, middle - size // 2), max(0, length - size))
        spans.append((start, min(length, start + size)))
    (top, bottom), (left, right) = spans
    out[:, : bottom - top, : right - left] = slices[:, top:bottom, left:right]
    return out


def export_trainset(folders: list[str | Path], out: Path, size: int = 96, splits: tuple[str, ...] = ("train",),
                    frame_step: int = 4, on_file=None) -> dict:
    """Write ``out/slices.npz`` and ``out/trainset.json``; returns the manifest.

    3D files give one stack; a 4D cine gives one stack per ``frame_step``-th frame (neighbouring
    frames are nearly alike, and the budget is tight).
    """
    import SimpleITK as sitk

    if size < 16 or frame_step < 1:
        raise ValueError(f"size must be >= 16 and frame step >= 1, not {size} and {frame_step}")
    chosen = [p for p in image_files(folders) if split_of(p.name) in splits]
    if not chosen:
        raise FileNotFoundError(f"no {'/'.join(splits)} images (*.nii.gz) in {', '.join(map(str, folders))} or their subfolders")
    parts: list[np.ndarray] = []
    stacks: list[dict] = []
    start = 0
    for path in chosen:
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
        frames = array if array.ndim == 4 else array[None]
        centre = heart_centre(path, frames.shape[-2:])
        for index in range(0, len(frames), frame_step):
            normalised = normalise(frames[index], intensity_scale(frames[index]))
            quantised = np.rint(crop_square(normalised, centre, size) / QUANTUM).astype(np.uint8)
            parts.append(quantised)
            stacks.append({"source": f"{path.parent.name}/{path.name}#{index}", "split": split_of(path.name),
                           "slice_spacing": float(image.GetSpacing()[2]), "start": start, "count": len(quantised)})
            start += len(quantised)
        if on_file is not None:
            on_file(path)
    return save_trainset(out, parts, stacks, splits=list(splits), frame_step=frame_step,
                         note="derived from ACDC (research use, non-commercial): never commit, never redistribute")


def save_trainset(out: Path, parts: list[np.ndarray], stacks: list[dict], **details) -> dict:
    """Write quantised stacks (each (Z, S, S) uint8, described by ``stacks``: source, split, slice_spacing, start, count)."""
    if not parts or any(p.dtype != np.uint8 or p.shape[1:] != parts[0].shape[1:] for p in parts):
        raise ValueError("a training set needs uint8 stacks of one square size")
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / (ARRAYS + ".tmp.npz")
    np.savez_compressed(temporary, slices=np.concatenate(parts))
    temporary.replace(out / ARRAYS)
    manifest = {"format": FORMAT, "version": 1, "size": int(parts[0].shape[-1]), "dtype": "uint8", "quantum": QUANTUM,
                "slices": sum(len(p) for p in parts), "stacks": stacks, **details}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_trainset(folders: Iterable[str | Path], split: str):
    """The stacks of ``split`` in trainset folders, as float16 normalised slices (empty when none was exported)."""
    stacks = []
    for folder in map(Path, folders):
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder / MANIFEST} is not a calid training set; write one with calid export-trainset")
        with np.load(folder / ARRAYS) as data:
            slices = data["slices"]
        quantum = np.float16(manifest["quantum"])
        for item in manifest["stacks"]:
            if item["split"] == split:
                part = slices[item["start"] : item["start"] + item["count"]].astype(np.float16) * quantum
                stacks.append(Stack(part, float(item["slice_spacing"]), item["source"]))
    return stacks
