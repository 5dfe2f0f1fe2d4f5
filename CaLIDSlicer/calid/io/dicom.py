"""A DICOM folder holding one short-axis cine (or one static stack) as a :class:`Volume`.

Images are grouped into slices by ImagePositionPatient projected on the slice normal
(from ImageOrientationPatient) and into frames by TriggerTime. SliceLocation is never
used: scanners fill it inconsistently (sign, reference point) and it lies on real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from calid.errors import InputError, InputFileError
from calid.io.validate import DRIFT_TOLERANCE_MM, check_slice_positions
from calid.io.volume import Volume

TAG_POSITION = "0020|0032"
TAG_ORIENTATION = "0020|0037"
TAG_TRIGGER_TIME = "0018|1060"
TAG_INSTANCE_NUMBER = "0020|0013"
TAG_SERIES_UID = "0020|000e"


@dataclass(frozen=True)
class DicomImage:
    path: Path
    pixels: np.ndarray  # (Y, X)
    spacing_xy: tuple[float, float]
    position: np.ndarray  # LPS of the first pixel
    row: np.ndarray  # direction of the x (column index) axis, LPS
    col: np.ndarray  # direction of the y (row index) axis, LPS
    trigger_time: float | None
    instance: int
    series: str


def read_dicom_series(folder: str | Path) -> Volume:
    """Read a DICOM folder as a stack ``(Z, Y, X)`` or a cine ``(T, Z, Y, X)``, slices ordered along the normal."""
    folder = Path(folder)
    images = [_read_image(path) for path in _dicom_files(folder)]
    _check_one_stack(images, folder)
    row, col = _orthonormal_axes(images[0].row, images[0].col)
    normal = np.cross(row, col)
    slices = _group_by_position(images, normal)
    frames = [_order_frames(group, k) for k, group in enumerate(slices)]
    n_frames = _common_frame_count(frames, slices, normal)

    positions = np.array([group[0].position for group in slices])
    spacing_z = 1.0  # a single slice has no spacing; validate_volume refuses it later
    if len(slices) > 1:
        check_slice_positions(positions, normal, float(np.median(np.diff(positions @ normal))))
        spacing_z = float((positions[-1] - positions[0]) @ normal / (len(slices) - 1))
    array = np.stack([np.stack([image.pixels for image in frame]) for frame in zip(*frames)])
    spacing = (*images[0].spacing_xy, spacing_z)
    direction = np.column_stack([row, col, normal])
    if n_frames == 1:
        return Volume(array[0], spacing, positions[0], direction)
    return Volume(array, spacing, positions[0], direction, frame_times=_frame_times(frames, n_frames))


def _dicom_files(folder: Path) -> list[str]:
    """Every DICOM image file GDCM finds in the folder (all series)."""
    files = [name for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
             for name in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)]
    if not files:
        raise InputFileError(
            f"no DICOM images found in folder {str(folder)!r}; give the folder of one short-axis series, "
            "or a .nii.gz / .nrrd file"
        )
    return files


def _read_image(path: str) -> DicomImage:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputFileError(f"cannot read DICOM file {path!r}: it is unreadable or corrupt") from err
    if image.GetDimension() == 3 and image.GetSize()[2] != 1:
        raise InputFileError(
            f"{path!r} is a multi-frame DICOM ({image.GetSize()[2]} frames in one file), which is not supported; "
            "convert the series to NIfTI (e.g. with dcm2niix) and read that"
        )

    def tag(key: str) -> str | None:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else None

    position, orientation = tag(TAG_POSITION), tag(TAG_ORIENTATION)
    if position is None or orientation is None:
        raise InputFileError(f"DICOM file {path!r} has no ImagePositionPatient/ImageOrientationPatient; "
                             "it is not an image slice of a short-axis series")
    cosines = np.array([float(v) for v in orientation.split("\\")])
    trigger = tag(TAG_TRIGGER_TIME)
    return DicomImage(
        path=Path(path),
        pixels=sitk.GetArrayFromImage(image).reshape(image.GetSize()[1], image.GetSize()[0]),
        spacing_xy=(float(image.GetSpacing()[0]), float(image.GetSpacing()[1])),
        position=np.array([float(v) for v in position.split("\\")]),
        row=cosines[:3],
        col=cosines[3:6],
        trigger_time=float(trigger) if trigger else None,
        instance=int(float(tag(TAG_INSTANCE_NUMBER) or 0)),
        series=tag(TAG_SERIES_UID) or "?",
    )


def _orthonormal_axes(row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row/column cosines made exactly orthonormal (DICOM stores them rounded)."""
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    return row, col / np.linalg.norm(col)


def _check_one_stack(images: list[DicomImage], folder: Path) -> None:
    """Refuse folders that mix orientations or image sizes (localisers, long-axis views)."""
    first = images[0]
    odd = [im for im in images if abs(im.row @ first.row) < 0.9999 or abs(im.col @ first.col) < 0.9999
           or im.pixels.shape != first.pixels.shape]
    if odd:
        series = sorted({im.series for im in odd} | {first.series})
        raise InputError(
            f"the DICOM folder {str(folder)!r} must hold one short-axis stack, but {len(odd)} of {len(images)} "
            f"images differ in orientation or size from {first.path.name} (series {series}); "
            "copy the short-axis cine series alone into a folder"
        )


def _group_by_position(images: list[DicomImage], normal: np.ndarray) -> list[list[DicomImage]]:
    """Images of each slice position, slices in increasing position along the normal."""
    ordered = sorted(images, key=lambda im: float(im.position @ normal))
    along = np.array([im.position @ normal for im in ordered])
    breaks = np.flatnonzero(np.diff(along) > DRIFT_TOLERANCE_MM) + 1
    return [list(group) for group in np.split(np.array(ordered, dtype=object), breaks)]


def _order_frames(group: list[DicomImage], slice_index: int) -> list[DicomImage]:
    """Images of one slice in time order (TriggerTime, else InstanceNumber)."""
    if all(im.trigger_time is not None for im in group):
        ordered = sorted(group, key=lambda im: (im.trigger_time, im.instance))
        times = [im.trigger_time for im in ordered]
        if len(set(times)) != len(times):
            raise InputError(
                f"slice {slice_index} has {len(times) - len(set(times))} image(s) with the same TriggerTime "
                f"(files {[im.path.name for im in ordered][:4]}...); the folder holds a repeated acquisition: "
                "keep one series per slice position"
            )
        return ordered
    return sorted(group, key=lambda im: im.instance)


def _common_frame_count(frames: list[list[DicomImage]], slices: list[list[DicomImage]], normal: np.ndarray) -> int:
    counts = [len(frame) for frame in frames]
    if len(set(counts)) != 1:
        detail = ", ".join(f"slice {k} at {group[0].position @ normal:.1f} mm: {n}"
                           for k, (group, n) in enumerate(zip(slices, counts)))
        raise InputError(
            f"every slice must have the same number of cine frames, not {detail}; "
            "an image is missing or the folder mixes series"
        )
    return counts[0]


def _frame_times(frames: list[list[DicomImage]], n_frames: int) -> tuple[float, ...]:
    """Median TriggerTime of each frame over slices (ms); 0, 1, 2... when there is none."""
    if any(im.trigger_time is None for frame in frames for im in frame):
        return tuple(float(t) for t in range(n_frames))
    times = np.array([[im.trigger_time for im in frame] for frame in frames])  # (Z, T)
    return tuple(float(t) for t in np.median(times, axis=0))
