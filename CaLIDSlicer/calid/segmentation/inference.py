"""Public API ``segment(volume)``: RV, LV myocardium and LV blood pool on every slice and frame.

Each slice is resampled in-plane to the network's pixel size (hearts then have
the same size in pixels whatever the scanner), labelled by a 2D network in
overlapping windows of its training crop size (whole-slice inference shifts its
instance-norm statistics: val Dice of the myocardium fell from 0.87 to 0.81), and
the class probabilities are resampled linearly back to the input's own grid before
the argmax, so the labels lie exactly over the input (same shape, spacing, origin,
direction) without the staircase of nearest-neighbour label resampling.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calid.errors import InputError
from calid.segmentation.labels import CARDIAC_STRUCTURES
from calid.io.volume import Volume

if TYPE_CHECKING:
    import torch

    from calid.progress import Progress, ProgressMode

#: The bundled model :func:`segment` uses when none is named.
DEFAULT_MODEL = "calid-segmenter-acdc"
#: Windows per forward pass (larger batches were no faster on a 2-core CPU).
WINDOWS_PER_BATCH = 32
#: Slices (of any frames) labelled per call, with their mirror images: bounds memory, one progress step.
SLICES_PER_CALL = 16
#: The old name of SLICES_PER_CALL.
BATCH_SIZE = SLICES_PER_CALL
#: Overlap of neighbouring windows (0.25 scored 0.01 lower Dice on val).
WINDOW_OVERLAP = 0.5
#: How many mirror images of each slice may be averaged (test-time augmentation): FLIPS[:n].
FLIP_COUNTS = (1, 2, 4)
#: One pass per slice by default: 4 mirror images cost 4x the time for +0.013 RV, +0.004 myocardium
#: and -0.002 LV Dice on the ACDC val patients (README, "Segmentation"); ``flips=4`` restores them.
DEFAULT_FLIPS = 1


@dataclass(frozen=True)
class SegmentationResult:
    """``labels``: uint8 ACDC label values on exactly the input's grid (and frames)."""

    labels: Volume
    model: str
    seconds: float
    models: tuple[dict, ...] = ()  # identity of the network used (calid.models.identity), for the report
    device: str = "cpu"


def to_model_grid(stack: np.ndarray, spacing_xy: tuple[float, float], pixel_size: float, *, labels: bool = False) -> np.ndarray:
    """(Z, Y, X) slices resampled in-plane to square ``pixel_size`` pixels (first pixel centre kept).

    The new grid's last pixel centre reaches at least as far as the old one, so
    :func:`from_model_grid` never needs to extrapolate.
    """
    sx, sy = spacing_xy
    size = (int(np.ceil((stack.shape[2] - 1) * sx / pixel_size)) + 1, int(np.ceil((stack.shape[1] - 1) * sy / pixel_size)) + 1)
    return _resample(stack, (sx, sy), size, (pixel_size, pixel_size), linear=not labels)


def from_model_grid(values: np.ndarray, pixel_size: float, shape_yx: tuple[int, int], spacing_xy: tuple[float, float]) -> np.ndarray:
    """(Z, y, x[, C]) values on the model grid -> (Z, Y, X[, C]) on the original grid, linearly."""
    size = (shape_yx[1], shape_yx[0])
    return _resample(values, (pixel_size, pixel_size), size, spacing_xy, linear=True)


def _resample(array: np.ndarray, spacing_xy, size_xy, new_spacing_xy, *, linear: bool) -> np.ndarray:
    """In-plane resampling of every slice with SimpleITK (slices are 1 'mm' apart and stay put)."""
    import SimpleITK as sitk

    vector = array.ndim == 4
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=vector)
    image.SetSpacing((float(spacing_xy[0]), float(spacing_xy[1]), 1.0))
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize((int(size_xy[0]), int(size_xy[1]), array.shape[0]))
    resampler.SetOutputSpacing((float(new_spacing_xy[0]), float(new_spacing_xy[1]), 1.0))
    resampler.SetInterpolator(sitk.sitkLinear if linear else sitk.sitkNearestNeighbor)
    resampler.SetUseNearestNeighborExtrapolator(True)  # the last row may lie a fraction of a pixel outside
    return sitk.GetArrayFromImage(resampler.Execute(image))


def normalised_frame(frame: np.ndarray, acquired: tuple[int, ...]) -> np.ndarray:
    """Divide by the 99.5th percentile of the measured slices, as in training (:mod:`calid.models.preprocess`)."""
    from calid.models.preprocess import intensity_scale, normalise

    measured = frame[list(acquired)] if acquired else frame
    return normalise(frame, intensity_scale(measured))


def keep_largest_components(labels: np.ndarray) -> np.ndarray:
    """Per structure, keep only its largest 3D-connected piece (stray blobs far from the heart go)."""
    from scipy import ndimage

    cleaned = labels.copy()
    connectivity = ndimage.generate_binary_structure(labels.ndim, labels.ndim)
    for item in CARDIAC_STRUCTURES:
        components, count = ndimage.label(labels == item.value, structure=connectivity)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            cleaned[(components > 0) & (components != 1 + int(np.argmax(sizes)))] = 0
    return cleaned


def resolve_device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    return device


def load_segmenter(model: str | os.PathLike | None = None, device: str = "cpu") -> tuple["torch.nn.Module", str]:
    """(network in eval mode, model name) from a model directory or an installed model's name."""
    from calid.models.identity import load_identified
    from calid.models.search import find_model

    path = Path(model) if model is not None and Path(model).is_dir() else find_model(str(model or DEFAULT_MODEL))
    network, config = load_identified(path, device=device)
    return network, f"{config.name} {config.version}"


def segment(
    volume: Volume,
    *,
    device: str = "auto",
    model: str | os.PathLike | None = None,
    progress: "Progress | ProgressMode | None" = None,
    keep_largest: bool = True,
    flips: int | None = None,
    average_flips: bool | None = None,
) -> SegmentationResult:
    """Label every slice of a 3D stack or every frame of a cine; geometry is copied from ``volume``.

    ``model`` is a model directory or installed model name (default: the bundled
    ACDC model). ``keep_largest`` removes all but the largest piece of each
    structure per frame; ``flips`` (1, 2 or 4; default :data:`DEFAULT_FLIPS`) averages the
    probabilities of the slice and its mirror images (n times the compute, steadier borders).
    ``average_flips`` is the older switch: True means ``flips=4``, False ``flips=1``.
    """
    started = time.perf_counter()
    count = flip_count(flips, average_flips)  # checked before the model loads
    device = resolve_device(device)
    network, name = load_segmenter(model, device)
    labels = segment_array(volume, network, device=device, progress=progress, keep_largest=keep_largest, flips=count)
    from calid.models.identity import identity_of

    identity = identity_of(network)
    return SegmentationResult(volume.replace(array=labels), name, time.perf_counter() - started,
                              models=(identity,) if identity else (), device=device)


def flip_count(flips: int | None = None, average_flips: bool | None = None) -> int:
    """The number of mirror images to average, from ``flips`` or the older ``average_flips`` switch."""
    if flips is None:
        return DEFAULT_FLIPS if average_flips is None else (len(FLIPS) if average_flips else 1)
    if isinstance(flips, bool) or flips not in FLIP_COUNTS:
        raise InputError(f"flips must be one of {', '.join(map(str, FLIP_COUNTS))} (mirror images averaged), not {flips!r}")
    if average_flips is not None and (flips > 1) != average_flips:
        raise InputError(f"flips={flips} contradicts average_flips={average_flips}; give only flips")
    return flips


def segment_array(
    volume: Volume, network, *, device: str = "cpu", progress=None, keep_largest: bool = True,
    flips: int | None = None, average_flips: bool | None = None,
) -> np.ndarray:
    """uint8 labels shaped like ``volume.array`` from an already loaded network.

    Slices of all frames are resampled in one call and labelled ``SLICES_PER_CALL`` at a time,
    with their mirror images in the same forward batches; a torch network is first rewritten
    into equivalent faster layers (:mod:`calid.models.fast_layers`).
    """
    from calid.progress import as_progress

    if not np.issubdtype(volume.array.dtype, np.number) or volume.array.dtype == bool:
        raise InputError(f"volume must hold numeric intensities, not {volume.array.dtype}")
    frames = volume.array if volume.is_cine else volume.array[None]
    spacing_xy = (volume.spacing[0], volume.spacing[1])
    normalised = np.concatenate([normalised_frame(frame, volume.acquired) for frame in frames])
    images = to_model_grid(normalised, spacing_xy, network.pixel_size)  # (T*Z, y, x)
    del normalised
    runner = _Runner(network, device, flip_count(flips, average_flips))
    labels = np.empty((len(images), *volume.slice_shape), np.uint8)
    with as_progress(progress).stage("segment", total=-(-len(images) // SLICES_PER_CALL)) as stage:
        for start in range(0, len(images), SLICES_PER_CALL):
            probabilities = runner(images[start : start + SLICES_PER_CALL])
            back = from_model_grid(probabilities, network.pixel_size, volume.slice_shape, spacing_xy)
            labels[start : start + len(back)] = np.argmax(back, axis=-1)
            stage.advance()
    labels = labels.reshape(frames.shape)
    if keep_largest:
        labels = np.stack([keep_largest_components(frame) for frame in labels])
    return labels if volume.is_cine else labels[0]


class _Runner:
    """(n, y, x) normalised slices -> (n, y, x, C) softmax probabilities averaged over ``flips`` mirror images.

    On the CPU the network stays in the default memory format: channels_last was not clearly faster
    end to end on the shared 2-core CPU (-6 % to +4 %) and moved a few labels (3 of 786,432 voxels
    on a Sunnybrook frame), so the labels of a given setting stay those of earlier versions.
    """

    def __init__(self, network, device: str, flips: int) -> None:
        import torch

        self.device = device
        self.flips = FLIPS[:flip_count(flips)]
        if isinstance(network, torch.nn.Module):
            from calid.models.fast_layers import fast_inference_copy

            network = fast_inference_copy(network)
            if device == "cuda":
                network = network.to(memory_format=torch.channels_last)
        self.network = network

    def __call__(self, slices: np.ndarray) -> np.ndarray:
        import contextlib

        import torch
        from monai.inferers import sliding_window_inference

        count = len(slices)
        cuda = self.device == "cuda"
        bf16 = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()  # CPU: float32
        with torch.inference_mode(), bf16:
            batch = torch.from_numpy(np.ascontiguousarray(slices, np.float32))[:, None].to(self.device)
            mirrored = torch.cat([_flipped(batch, axes) for axes in self.flips])
            if cuda:
                mirrored = mirrored.contiguous(memory_format=torch.channels_last)
            window = (self.network.window, self.network.window)
            logits = sliding_window_inference(mirrored, window, WINDOWS_PER_BATCH, self.network,
                                              overlap=WINDOW_OVERLAP, mode="gaussian")
            probabilities = torch.softmax(logits.float(), dim=1)
            total = sum(_flipped(probabilities[i * count : (i + 1) * count], axes) for i, axes in enumerate(self.flips))
            return (total / len(self.flips)).permute(0, 2, 3, 1).cpu().numpy()


#: Mirror axes averaged with ``flips`` (the first n); all 8 quarter turns and mirrors scored no better on val.
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def _flipped(images: "torch.Tensor", axes: tuple[int, ...]) -> "torch.Tensor":
    return images.flip(axes) if axes else images
