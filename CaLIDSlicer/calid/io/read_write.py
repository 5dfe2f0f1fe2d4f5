"""Read and write volumes: NIfTI, NRRD, MetaImage, DICOM series, Slicer sequences.

Everything is LPS in memory (see :mod:`calid.io.volume`). SimpleITK does the format
work for NIfTI, NRRD and MetaImage; :mod:`calid.io.dicom` groups DICOM files into a
cine, and :mod:`calid.io.slicer_files` handles Slicer's ``.seq.nrrd`` and ``.seg.nrrd``.
Every write is atomic (temporary file in the target folder, then ``os.replace``) so a
failed or cancelled run never leaves a half-written file behind.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from calid.errors import InputFileError, OutputError
from calid.io.paths import atomic_path, compound_suffix
from calid.io.synthesized import SYNTHESIZED_KEY, parse_slice_indices
from calid.io.volume import Volume
from calid.segmentation.labels import CARDIAC_STRUCTURES, Structure

READ_FORMATS = ".nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd, .seq.nrrd, .seg.nrrd or a DICOM folder"
WRITE_FORMATS = ".nii, .nii.gz, .nrrd, .mha, .seq.nrrd (cine) or .seg.nrrd (labels)"

#: NIfTI xyzt_units time codes -> milliseconds per unit.
_NIFTI_TIME_UNIT_MS = {8: 1000.0, 16: 1.0, 24: 0.001}


# -- reading -----------------------------------------------------------------


def read(path: str | Path) -> Volume:
    """Read a 3D stack or a cine from a file or a DICOM folder.

    NIfTI 3D gives ``(Z, Y, X)``, 4D gives a cine ``(T, Z, Y, X)``. Frame times are
    in **ms**: from the NIfTI time step converted by its unit (s, ms, us); when the
    file gives no time unit, a step <= 0 or the writers' placeholder step of 1, frames
    are numbered ``0, 1, 2, ...`` because nothing more is known. Integer pixel types are kept as on disk.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"input {str(path)!r} does not exist; give a {READ_FORMATS}")
    if path.is_dir():
        from calid.io.dicom import read_dicom_series

        return read_dicom_series(path)
    suffix = compound_suffix(path)
    if suffix == ".seg.nrrd":
        return read_segmentation(path)
    if suffix == ".seq.nrrd" or (suffix in (".nrrd", ".nhdr") and _nrrd_dimension(path) == 4):
        from calid.io.slicer_files import read_sequence

        return read_sequence(path)
    return _read_with_sitk(path)


def _nrrd_dimension(path: Path) -> int | None:
    """Dimension of a NRRD header (None if unreadable: the full read then reports why)."""
    import nrrd

    try:
        return int(nrrd.read_header(str(path))["dimension"])
    except (nrrd.NRRDError, OSError, ValueError, KeyError):
        return None


def _read_with_sitk(path: Path) -> Volume:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputFileError(
            f"cannot read {str(path)!r}: it is missing, unreadable or corrupt "
            f"(readable formats: {READ_FORMATS})"
        ) from err
    meta = {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}
    return volume_from_sitk(image, meta, source=path)


def volume_from_sitk(image: sitk.Image, meta: dict[str, str] | None = None, *, source: Path | None = None) -> Volume:
    """A :class:`Volume` from a 2D, 3D or 4D SimpleITK image (2D becomes one slice)."""
    meta = meta or {}
    dim = image.GetDimension()
    if image.GetNumberOfComponentsPerPixel() != 1 or dim not in (2, 3, 4):
        raise InputFileError(
            f"{source or 'image'} must hold one scalar 2D, 3D or 4D image, not {dim}D with "
            f"{image.GetNumberOfComponentsPerPixel()} components per pixel"
        )
    array = sitk.GetArrayFromImage(image)
    matrix = np.array(image.GetDirection()).reshape(dim, dim)
    direction = np.eye(3)
    n = min(dim, 3)
    direction[:n, :n] = matrix[:n, :n]
    spacing = [*image.GetSpacing()[:3], 1.0, 1.0][:3]
    origin = [*image.GetOrigin()[:3], 0.0, 0.0][:3]
    frame_times = None
    if dim == 2:
        array = array[np.newaxis]
    elif dim == 4:
        frame_times = _frame_times_ms(image, meta)
    synthesized = parse_slice_indices(meta.get(SYNTHESIZED_KEY, ""))
    return Volume(array, spacing, origin, direction, frame_times=frame_times, synthesized=synthesized)


def _frame_times_ms(image: sitk.Image, meta: dict[str, str]) -> tuple[float, ...]:
    """Frame times (ms) of a 4D image; ``0, 1, 2...`` when the file gives no timing.

    A step of exactly 1 (s or ms) from time 0 is what nibabel and ITK write when they
    know no timing (ACDC cine says "1 s"); no cardiac cine has such a frame step, so
    it counts as "no timing" too.
    """
    n_frames = image.GetSize()[3]
    if "xyzt_units" in meta:  # NIfTI: read the raw header, ITK has already rescaled spacing
        unit_ms = _NIFTI_TIME_UNIT_MS.get(int(meta["xyzt_units"]) & 0x38)
        step = float(meta.get("pixdim[4]", 0.0))
        offset = float(meta.get("toffset", 0.0))
    else:
        unit_ms, step, offset = 1.0, image.GetSpacing()[3], image.GetOrigin()[3]
    if unit_ms is None or step <= 0 or (step == 1.0 and offset == 0.0):
        return tuple(float(t) for t in range(n_frames))
    return tuple((offset + t * step) * unit_ms for t in range(n_frames))


# -- writing -----------------------------------------------------------------


def write(volume: Volume, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``volume`` by suffix (see ``WRITE_FORMATS``); returns the path written.

    NIfTI stores a cine as 4D with a uniform frame step (the mean step, in seconds as
    the format expects); use ``.seq.nrrd`` to keep irregular frame times exactly.
    Synthesised slice indices are stored in NRRD / MetaImage metadata.
    """
    path = Path(path)
    suffix = compound_suffix(path)
    if suffix == ".seq.nrrd":
        from calid.io.slicer_files import write_sequence

        return write_sequence(volume, path, overwrite=overwrite)
    if suffix == ".seg.nrrd":
        return write_segmentation(volume, path)
    if suffix not in (".nii", ".nii.gz", ".nrrd", ".mha"):
        raise OutputError(f"output must end in {WRITE_FORMATS}, not {path.name!r}")
    if volume.is_cine and suffix not in (".nii", ".nii.gz"):
        raise OutputError(f"a cine must be written as .nii.gz or .seq.nrrd, not {suffix}: {path.name!r}")
    image = volume_to_sitk(volume)
    with atomic_path(path, overwrite=overwrite) as temp:
        _write_sitk(image, temp)
    return path


def _write_sitk(image: sitk.Image, path: Path) -> None:
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path))
    writer.SetUseCompression(True)
    try:
        writer.Execute(image)
    except RuntimeError as err:
        raise OutputError(f"cannot write {str(path)!r}; check free disk space and permissions") from err


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """A 3D (or, for a cine, 4D) SimpleITK image with the volume's geometry and metadata."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array), isVector=False)
    if volume.is_cine:
        step_s, offset_s = _uniform_frame_step_s(volume.frame_times, volume.n_frames)
        direction = np.eye(4)
        direction[:3, :3] = volume.direction
        image.SetSpacing((*volume.spacing, step_s))
        image.SetOrigin((*volume.origin, offset_s))
        image.SetDirection(direction.flatten().tolist())
    else:
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(volume.direction.flatten().tolist())
    if volume.synthesized:
        image.SetMetaData(SYNTHESIZED_KEY, ",".join(str(i) for i in volume.synthesized))
    return image


def _uniform_frame_step_s(frame_times: tuple[float, ...] | None, n_frames: int) -> tuple[float, float]:
    """(step, first time) in seconds; warns when irregular times must be made uniform."""
    if not frame_times or n_frames < 2:
        return 1.0, (frame_times[0] / 1000.0 if frame_times else 0.0)
    times = np.asarray(frame_times)
    steps = np.diff(times)
    if np.ptp(steps) > 1e-6 * max(1.0, abs(steps.mean())):
        warnings.warn("NIfTI stores one frame step: irregular frame times were made uniform; "
                      "write .seq.nrrd to keep them", stacklevel=3)
    step = float(steps.mean()) if steps.mean() > 0 else 1.0
    return step / 1000.0, float(times[0]) / 1000.0


# -- segmentations -----------------------------------------------------------


def write_segmentation(
    labels: Volume, path: str | Path, structures: tuple[Structure, ...] = CARDIAC_STRUCTURES
) -> Path:
    """Write a labelmap: ``.seg.nrrd`` with named, coloured segments, else a plain labelmap file."""
    if compound_suffix(path) != ".seg.nrrd":
        return write(labels, path)
    from calid.io.slicer_files import write_seg_nrrd

    return write_seg_nrrd(labels, Path(path), structures)


def read_segmentation(path: str | Path) -> Volume:
    """A labelmap with ACDC values from a ``.seg.nrrd`` (segments matched by name) or a labelmap file."""
    path = Path(path)
    if compound_suffix(path) != ".seg.nrrd":
        return read(path)
    if not path.is_file():
        raise InputFileError(f"segmentation {str(path)!r} does not exist")
    from calid.io.slicer_files import read_seg_nrrd

    return read_seg_nrrd(path)
