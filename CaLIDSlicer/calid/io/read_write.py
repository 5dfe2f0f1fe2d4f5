"""Read and write volumes: NIfTI, NRRD, MetaImage, DICOM series, Slicer sequences.

Everything is LPS in memory (see :mod:`calid.io.volume`). SimpleITK does the format
work for NIfTI, NRRD and MetaImage; :mod:`calid.io.dicom` groups DICOM files into a
cine, and :mod:`calid.io.slicer_files` handles Slicer's ``.seq.nrrd`` and ``.seg.nrrd``.
Every write is atomic (temporary file in the target folder, then ``os.replace``) so a
failed or cancelled run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
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

#: Volume.time_unit -> (NIfTI xyzt_units time code, milliseconds per unit); "unknown" is code 0.
NIFTI_TIME_UNITS = {"s": (8, 1000.0), "ms": (16, 1.0), "us": (24, 0.001)}
_NIFTI_TIME_MASK = 0x38


# -- reading -----------------------------------------------------------------


def read(path: str | Path) -> Volume:
    """Read a 3D stack or a cine from a file or a DICOM folder.

    NIfTI 3D gives ``(Z, Y, X)``, 4D gives a cine ``(T, Z, Y, X)``. Frame times are
    in **ms**: ``toffset + t * pixdim[4]`` converted by the NIfTI time unit (s, ms, us);
    with no unit the header's numbers are kept as they are (``time_unit`` "unknown"), and
    a step <= 0 gives no frame times. Integer pixel types are kept as on disk.
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
    if image.GetDimension() == 4 and compound_suffix(path) in (".nii", ".nii.gz"):
        meta.update(_nifti_time_header(path))  # ITK reports a pixdim[4] of 0 as 1
    return volume_from_sitk(image, meta, source=path)


def _nifti_time_header(path: Path) -> dict[str, str]:
    """``xyzt_units``, ``pixdim[4]`` and ``toffset`` as stored in a NIfTI-1 header (348 bytes)."""
    import gzip
    import struct

    with (gzip.open if compound_suffix(path) == ".nii.gz" else open)(path, "rb") as handle:
        header = handle.read(348)
    order = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
    if struct.unpack(order + "i", header[:4])[0] != 348:
        return {}  # not NIfTI-1 (e.g. NIfTI-2): keep what ITK reported
    return {"xyzt_units": str(header[123]), "pixdim[4]": repr(struct.unpack(order + "f", header[92:96])[0]),
            "toffset": repr(struct.unpack(order + "f", header[136:140])[0])}


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
    frame_times, time_unit = None, None
    if dim == 2:
        array = array[np.newaxis]
    elif dim == 4:
        frame_times, time_unit = _frame_times_ms(image, meta)
    synthesized = parse_slice_indices(meta.get(SYNTHESIZED_KEY, ""))
    return Volume(array, spacing, origin, direction, frame_times=frame_times, synthesized=synthesized, time_unit=time_unit)


def _frame_times_ms(image: sitk.Image, meta: dict[str, str]) -> tuple[tuple[float, ...] | None, str | None]:
    """(frame times, NIfTI time unit) of a 4D image, exactly as the header says.

    NIfTI: ``toffset + t * pixdim[4]`` in the unit of ``xyzt_units``, converted to ms; with no
    known unit the numbers are kept as they are (unit "unknown"). A step <= 0 gives no times.
    """
    n_frames = image.GetSize()[3]
    if "xyzt_units" in meta:  # NIfTI: read the raw header, ITK has already rescaled spacing
        code = int(meta["xyzt_units"]) & _NIFTI_TIME_MASK
        unit = next((name for name, (c, _) in NIFTI_TIME_UNITS.items() if c == code), "unknown")
        unit_ms = NIFTI_TIME_UNITS[unit][1] if unit != "unknown" else 1.0
        step = float(meta.get("pixdim[4]", 0.0))
        offset = float(meta.get("toffset", 0.0))
    else:
        unit, unit_ms, step, offset = None, 1.0, image.GetSpacing()[3], image.GetOrigin()[3]
    if step <= 0:
        return None, None
    return tuple((offset + t * step) * unit_ms for t in range(n_frames)), unit


# -- writing -----------------------------------------------------------------


def write(volume: Volume, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``volume`` by suffix (see ``WRITE_FORMATS``); returns the path written.

    NIfTI stores a cine as 4D with a uniform frame step (the mean step) in the unit the
    source file used (seconds for a cine made in memory); use ``.seq.nrrd`` to keep irregular
    frame times exactly.
    Synthesised slice indices are stored in NRRD / MetaImage metadata.
    """
    path = Path(path)
    suffix = compound_suffix(path)
    if suffix == ".seq.nrrd":
        from calid.io.slicer_files import write_sequence

        return write_sequence(volume, path, overwrite=overwrite)
    if suffix == ".seg.nrrd":
        return write_segmentation(volume, path)
    check_write_format(path, cine=volume.is_cine)
    image = volume_to_sitk(volume)
    with atomic_path(path, overwrite=overwrite) as temp:
        _write_sitk(image, temp)
        if volume.is_cine and nifti_time_axis(volume)[2] != NIFTI_TIME_UNITS["s"][0]:
            _set_nifti_time_code(temp, nifti_time_axis(volume)[2])
    return path


def check_write_format(path: str | Path, *, cine: bool, labels: bool = False) -> Path:
    """Refuse a file name whose format cannot hold this output; cheap, so commands call it before the work.

    Images: see ``WRITE_FORMATS`` (a cine only .nii/.nii.gz/.seq.nrrd). Labels: a labelmap file or
    .seg.nrrd; a cine's labels are one 4D labelmap (.nii.gz) or a Slicer sequence (.seq.nrrd).
    """
    path = Path(path)
    suffix, name = compound_suffix(path), path.name
    stem = name[: -len(suffix)] if suffix else name
    if labels and cine and suffix not in (".nii", ".nii.gz", ".seq.nrrd"):
        held = " (a .seg.nrrd holds one 3D labelmap)" if suffix == ".seg.nrrd" else ""
        raise OutputError(f"a cine's labels are written as one 4D labelmap: name the file {stem}.nii.gz "
                          f"(or {stem}.seq.nrrd, a Slicer sequence), not {name!r}{held}")
    if labels and suffix not in (".nii", ".nii.gz", ".nrrd", ".mha", ".seg.nrrd", ".seq.nrrd"):
        raise OutputError(f"labels must be written as .nii.gz, .nrrd, .mha or .seg.nrrd, not {name!r}")
    if not labels and suffix == ".seg.nrrd":
        raise OutputError(f"a .seg.nrrd holds labels, not images: write {name!r} as {stem}.nii.gz or {stem}.nrrd")
    if not labels and suffix not in (".nii", ".nii.gz", ".nrrd", ".mha", ".seq.nrrd"):
        raise OutputError(f"output must end in {WRITE_FORMATS}, not {name!r}")
    if not labels and cine and suffix not in (".nii", ".nii.gz", ".seq.nrrd"):
        raise OutputError(f"a cine must be written as .nii.gz or .seq.nrrd, not {suffix}: {name!r}")
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
    """A 3D (or, for a cine, 4D) SimpleITK image with the volume's geometry and metadata.

    A cine's time axis is in the unit it will be written in (:func:`nifti_time_axis`).
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array), isVector=False)
    if volume.is_cine:
        step, offset, _ = nifti_time_axis(volume)
        direction = np.eye(4)
        direction[:3, :3] = volume.direction
        image.SetSpacing((*volume.spacing, step))
        image.SetOrigin((*volume.origin, offset))
        image.SetDirection(direction.flatten().tolist())
    else:
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(volume.direction.flatten().tolist())
    if volume.synthesized:
        image.SetMetaData(SYNTHESIZED_KEY, ",".join(str(i) for i in volume.synthesized))
    return image


def nifti_time_axis(volume: Volume) -> tuple[float, float, int]:
    """(pixdim[4], toffset, xyzt_units time code) for a cine: its file's unit kept, else seconds.

    Frames with no times are written as step 1 with no unit, which reads back as "unknown".
    """
    times = volume.frame_times
    if not times:
        return 1.0, 0.0, 0
    unit = volume.time_unit or "s"
    code, unit_ms = NIFTI_TIME_UNITS.get(unit, (0, 1.0))
    step_ms, offset_ms = _uniform_frame_step(times)
    return step_ms / unit_ms, offset_ms / unit_ms, code


def _uniform_frame_step(frame_times: tuple[float, ...]) -> tuple[float, float]:
    """(step, first time) in the frame times' unit; warns when irregular times must be made uniform."""
    times = np.asarray(frame_times, dtype=float)
    if len(times) < 2:
        return 1.0, float(times[0])
    steps = np.diff(times)
    if np.ptp(steps) > 1e-6 * max(1.0, abs(steps.mean())):
        warnings.warn("NIfTI stores one frame step: irregular frame times were made uniform; "
                      "write .seq.nrrd to keep them", stacklevel=4)
    step = float(steps.mean()) if steps.mean() > 0 else 1.0
    return step, float(times[0])


def _set_nifti_time_code(path: Path, code: int) -> None:
    """Set the time bits of ``xyzt_units`` (ITK always writes seconds); .nii.gz is recompressed."""
    import gzip
    import shutil

    opener = gzip.open if compound_suffix(path) == ".nii.gz" else open
    with opener(path, "rb") as handle:
        header = bytearray(handle.read(348))
        if int.from_bytes(header[:4], "little") != 348 and int.from_bytes(header[:4], "big") != 348:
            raise OutputError(f"{str(path)!r} is not a NIfTI-1 file; cannot set its time unit")
        header[123] = (header[123] & ~_NIFTI_TIME_MASK & 0xFF) | code
        patched = path.with_name(path.name + ".time")
        try:
            with opener(patched, "wb") as out:
                out.write(header)
                shutil.copyfileobj(handle, out, 1 << 20)
            os.replace(patched, path)
        finally:
            patched.unlink(missing_ok=True)


# -- segmentations -----------------------------------------------------------


def write_segmentation(
    labels: Volume, path: str | Path, structures: tuple[Structure, ...] = CARDIAC_STRUCTURES
) -> Path:
    """Write a labelmap: ``.seg.nrrd`` with named, coloured segments, else a plain labelmap file."""
    check_write_format(path, cine=labels.is_cine, labels=True)
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
