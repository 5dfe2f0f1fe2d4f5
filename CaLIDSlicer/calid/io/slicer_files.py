"""Slicer's own file kinds: volume sequences (``.seq.nrrd``) and segmentations (``.seg.nrrd``).

A ``.seq.nrrd`` is a 4D NRRD with three space axes and one ``list`` axis whose
``axis N index values:=...`` field holds the frame times; Slicer writes the list axis
last, older files put it first, and both are read. A ``.seg.nrrd`` holds one labelmap
layer plus named, coloured segments (slicerio does the header).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from calid.errors import InputFileError, OutputError
from calid.io.paths import atomic_path
from calid.io.synthesized import SYNTHESIZED_KEY, parse_slice_indices
from calid.segmentation.labels import CARDIAC_STRUCTURES, Structure
from calid.io.volume import Volume

#: Sequence index units Slicer may write -> milliseconds per unit.
_TIME_UNIT_MS = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "us": 0.001}


def _geometry_from_ijk_to_lps(ijk_to_lps: np.ndarray) -> dict:
    matrix = np.asarray(ijk_to_lps, dtype=float)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    return {"spacing": spacing, "origin": matrix[:3, 3], "direction": matrix[:3, :3] / spacing}


def _read_nrrd(path: Path) -> tuple[np.ndarray, dict]:
    import nrrd

    try:
        return nrrd.read(str(path), index_order="C")
    except (nrrd.NRRDError, OSError, ValueError, EOFError) as err:
        raise InputFileError(f"cannot read {str(path)!r}: it is not a readable NRRD file ({err})") from err


# -- volume sequences ------------------------------------------------------


def read_sequence(path: str | Path) -> Volume:
    """A cine from a Slicer volume sequence; frame times (ms) from the list axis index values."""
    path = Path(path)
    data, header = _read_nrrd(path)
    kinds = list(header.get("kinds", ["domain"] * data.ndim))
    list_axes = [i for i, kind in enumerate(kinds) if kind not in ("domain", "space")]
    space_axes = [i for i, kind in enumerate(kinds) if kind in ("domain", "space")]
    if len(space_axes) != 3 or len(list_axes) > 1:
        raise InputFileError(f"{str(path)!r} must be a sequence of 3D scalar volumes, not NRRD axes of kinds {kinds}")
    directions = np.asarray(header.get("space directions"), dtype=float)[space_axes]
    if header.get("space") in ("right-anterior-superior", "RAS"):
        flip = np.diag([-1.0, -1.0, 1.0])
        directions, origin = directions @ flip, flip @ np.asarray(header["space origin"], dtype=float)
    else:
        origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    spacing = np.linalg.norm(directions, axis=1)
    geometry = {"spacing": spacing, "origin": origin, "direction": (directions / spacing[:, None]).T}
    synthesized = parse_slice_indices(header.get(SYNTHESIZED_KEY, ""))
    if not list_axes:
        return Volume(np.ascontiguousarray(data), **geometry, synthesized=synthesized)
    # index_order="C" reverses the NRRD axes: NRRD axis k is array axis ndim-1-k.
    list_axis = list_axes[0]
    array = np.moveaxis(data, data.ndim - 1 - list_axis, 0)
    times = _index_values_ms(header, list_axis, array.shape[0])
    return Volume(np.ascontiguousarray(array), **geometry, frame_times=times, synthesized=synthesized)


def _index_values_ms(header: dict, axis: int, n_frames: int) -> tuple[float, ...]:
    """Frame times (ms) from ``axis N index values``; 0, 1, 2... when absent or not numeric."""
    values = str(header.get(f"axis {axis} index values", "")).split()
    units = header.get("units") or []
    unit = units[axis].strip().lower() if axis < len(units) and units[axis] else "ms"
    try:
        times = [float(v) * _TIME_UNIT_MS.get(unit, 1.0) for v in values]
    except ValueError:
        times = []
    if len(times) != n_frames:
        return tuple(float(t) for t in range(n_frames))
    return tuple(times)


def write_sequence(volume: Volume, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write a cine (or a 3D stack as one frame) as a Slicer volume sequence, time in ms."""
    import nrrd

    path = Path(path)
    cine = volume.array if volume.is_cine else volume.array[np.newaxis]
    times = volume.frame_times or tuple(float(t) for t in range(cine.shape[0]))
    directions = (volume.direction * np.asarray(volume.spacing)).T  # rows = index axes, LPS
    header = {
        "space": "left-posterior-superior",
        "kinds": ["domain", "domain", "domain", "list"],
        "space directions": np.vstack([directions, np.full(3, np.nan)]),
        "space origin": np.asarray(volume.origin),
        "labels": ["", "", "", "time"],
        "units": ["", "", "", "ms"],
        "encoding": "gzip",
        "DataNodeClassName": "vtkMRMLScalarVolumeNode",
        "axis 3 index type": "numeric",
        "axis 3 index values": " ".join(f"{t:.6g}" for t in times),
    }
    if volume.synthesized:
        header[SYNTHESIZED_KEY] = ",".join(str(i) for i in volume.synthesized)
    with atomic_path(path, overwrite=overwrite) as temp:
        try:
            # index_order="C": the (T, Z, Y, X) array is NRRD's (x, y, z, t) reversed
            nrrd.write(str(temp), np.ascontiguousarray(cine), header, index_order="C", compression_level=1)
        except (OSError, ValueError) as err:
            raise OutputError(f"cannot write {str(path)!r}: {err}") from err
    return path


# -- segmentations ----------------------------------------------------------


def write_seg_nrrd(labels: Volume, path: Path, structures: tuple[Structure, ...] = CARDIAC_STRUCTURES) -> Path:
    """A Slicer segmentation: one labelmap layer, a named and coloured segment per structure."""
    import slicerio

    if labels.is_cine:
        raise OutputError(f"a .seg.nrrd holds one 3D labelmap, not a cine of {labels.n_frames} frames; "
                          "write one frame at a time")
    if not np.issubdtype(labels.array.dtype, np.integer):
        raise OutputError(f"labels must have an integer dtype, not {labels.array.dtype}")
    known = {s.value for s in structures}
    unknown = sorted(set(np.unique(labels.array).tolist()) - known - {0})
    if unknown:
        raise OutputError(f"label values must be 0 or one of {sorted(known)}, not {unknown}")
    voxels = np.ascontiguousarray(labels.array.transpose(2, 1, 0)).astype(np.uint8)  # (x, y, z)
    segments = []
    for item in structures:
        segments.append({
            "id": f"Segment_{item.value}",
            "name": item.name,
            "color": list(item.color),
            "labelValue": item.value,
            "layer": 0,
            "extent": _extent(voxels == item.value),
        })
    segmentation = {"voxels": voxels, "ijkToLPS": labels.affine_lps(), "segments": segments,
                    "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap"}
    with atomic_path(path) as temp:
        slicerio.write_segmentation(str(temp), segmentation, compression_level=1)
    return path


def _extent(mask: np.ndarray) -> list[int]:
    """Slicer's segment extent (i0 i1 j0 j1 k0 k1); empty segments get the empty extent."""
    if not mask.any():
        return [0, -1, 0, -1, 0, -1]
    return [int(v) for axis in np.nonzero(mask) for v in (axis.min(), axis.max())]


def read_seg_nrrd(path: Path, structures: tuple[Structure, ...] = CARDIAC_STRUCTURES) -> Volume:
    """A labelmap with our label values; segments are matched to structures by name."""
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as err:  # slicerio raises plain IOError/ValueError/KeyError on bad headers
        raise InputFileError(f"cannot read segmentation {str(path)!r}: {err}") from err
    voxels = np.asarray(segmentation["voxels"])
    layers = voxels if voxels.ndim == 4 else voxels[np.newaxis]
    by_name = {s.name.lower(): s for s in structures}
    labels = np.zeros(layers.shape[1:], dtype=np.uint8)
    ignored = []
    for segment in segmentation.get("segments", []):
        item = by_name.get(str(segment.get("name", "")).lower())
        if item is None:
            ignored.append(segment.get("name"))
            continue
        labels[layers[segment.get("layer", 0)] == segment.get("labelValue", 1)] = item.value
    if ignored:
        warnings.warn(f"segments {ignored} of {path.name} are not cardiac structures "
                      f"({[s.name for s in structures]}) and were left out", stacklevel=2)
    geometry = _geometry_from_ijk_to_lps(segmentation["ijkToLPS"])
    return Volume(np.ascontiguousarray(labels.transpose(2, 1, 0)), **geometry)
