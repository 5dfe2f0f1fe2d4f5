"""Training data: real short-axis stacks, normalised once into a numpy cache.

Decoding NIfTI every step would dominate CPU training, so :func:`build_cache` reads
each stack (an ACDC ED/ES volume, or one frame of an ACDC cine) once, normalises it
like inference does (:mod:`calid.models.preprocess`) and stores float16 slices in a
``.npz``. Only patients of the requested split (:mod:`calid.evaluation.splits`) are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from calid.models.preprocess import intensity_scale, normalise
from calid.evaluation.splits import Split, split_of
from calid.train.stack import Stack  # noqa: F401  (re-exported: the trainers import it from here)


def stack_files(data_dirs: Iterable[str | Path], split: Split) -> list[Path]:
    """Image files (not label maps) of ``split`` patients in the given folders."""
    files: list[Path] = []
    for folder in data_dirs:
        for path in sorted(Path(folder).glob("*.nii.gz")):
            if "_gt" in path.name or "mask" in path.name:
                continue
            if split_of(path.name) == split:
                files.append(path)
    return files


def read_stacks(path: Path) -> list[Stack]:
    """A 3D file is one stack; a 4D cine gives one stack per frame."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    slice_spacing = float(image.GetSpacing()[2])
    frames = array if array.ndim == 4 else array[None]
    stacks = []
    for index, frame in enumerate(frames):
        slices = normalise(frame, intensity_scale(frame)).astype(np.float16)
        stacks.append(Stack(slices, slice_spacing, f"{path.name}#{index}"))
    return stacks


def build_cache(data_dirs: Iterable[str | Path], split: Split, cache_file: Path) -> Path:
    """Write every stack of ``split`` to ``cache_file`` (npz, one array per stack + JSON index)."""
    arrays: dict[str, np.ndarray] = {}
    index = []
    for path in stack_files(data_dirs, split):
        for stack in read_stacks(path):
            key = f"s{len(index):05d}"
            arrays[key] = stack.slices
            index.append({"key": key, "slice_spacing": stack.slice_spacing, "source": stack.source})
    if not index:
        raise FileNotFoundError(f"no {split} stacks (*.nii.gz) found in {', '.join(map(str, data_dirs))}")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
    temporary = cache_file.with_suffix(".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(cache_file)
    return cache_file


def load_cache(cache_file: Path) -> list[Stack]:
    """All stacks of a cache file, in memory."""
    with np.load(cache_file) as data:
        index = json.loads(bytes(data["index"]).decode())
        return [Stack(data[item["key"]], item["slice_spacing"], item["source"]) for item in index]


def cached_stacks(data_dirs: list[str], split: Split, cache_dir: Path) -> list[Stack]:
    """Stacks of ``split`` from the cache, building it on first use (keyed by the folders)."""
    import hashlib

    from calid.train.trainset import is_trainset, load_trainset

    if data_dirs and all(is_trainset(d) for d in data_dirs):  # compact export (calid export-trainset): no NIfTI reading
        Path(cache_dir).mkdir(parents=True, exist_ok=True)  # latents derived from it are cached there
        return load_trainset(data_dirs, split)
    key = hashlib.sha256(json.dumps([str(Path(d).resolve()) for d in data_dirs]).encode()).hexdigest()[:12]
    cache_file = Path(cache_dir) / f"stacks-{split}-{key}.npz"
    if not cache_file.is_file():
        build_cache(data_dirs, split, cache_file)
    return load_cache(cache_file)


def save_array_list(path: Path, arrays: list[np.ndarray], spacings: list[float], sources: list[str]) -> None:
    """Arrays with their slice spacing and source name in one ``.npz``, written atomically."""
    contents = {f"a{i:05d}": array for i, array in enumerate(arrays)}
    contents["spacing"] = np.array(spacings, dtype=np.float32)
    contents["source"] = np.array(sources)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(temporary, **contents)
    temporary.replace(path)


def load_array_list(path: Path) -> list[tuple[np.ndarray, float, str]]:
    """(array, slice spacing, source) as saved by :func:`save_array_list`."""
    with np.load(path) as data:
        spacing, source = data["spacing"], data["source"]
        return [(data[f"a{i:05d}"], float(spacing[i]), str(source[i])) for i in range(len(spacing))]
