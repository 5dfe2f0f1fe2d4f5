"""Evaluation cases: which stacks to score, their labels, and which patient split they belong to.

``find_cases`` knows the layouts of the shared data (``acdc/``, ``acdc_cine/``,
``sunnybrook/``; see its README) and falls back to "every readable image file in the
folder". ``load_case`` reads one case into a :class:`LoadedCase` whose labels always
use the ACDC values (1 RV, 2 LV myocardium, 3 LV blood pool).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from calid.errors import InputError, InputFileError
from calid.segmentation.labels import LV, MYO, RV
from calid.evaluation.splits import split_of
from calid.io.volume import Volume

SplitChoice = Literal["train", "val", "test", "all"]
CaseKind = Literal["3d", "cine"]
SPLITS = ("test", "val", "train", "all")
PHANTOM = "phantom"

_ACDC_FRAME = re.compile(r"^(patient\d{3})_(ED|ES)\.nii\.gz$")
_ACDC_CINE = re.compile(r"^(patient\d{3})_4d\.nii\.gz$")
_ACDC_CINE_GT = re.compile(r"^(patient\d{3})_(?:ED|ES)_frame(\d+)_gt\.nii\.gz$")
_LV_MASK = re.compile(r"^(.+)_lvmask_4d\.nii\.gz$")
_LABEL_FILE = re.compile(r"(_gt|_lvmask_4d|_seg|_label|_labels)\.(nii\.gz|nii|nrrd|mha)$|\.seg\.nrrd$")

#: Sunnybrook masks: 1 LV blood pool, 2 LV myocardium -> ACDC values (RV is not contoured).
_SUNNYBROOK_TO_ACDC = {1: LV, 2: MYO}

#: Generated evaluation cases: an odd slice count so every other slice can be held out.
PHANTOM_DEFAULTS: dict[str, object] = {"n_slices": 11, "n_frames": 1, "size": (192, 192)}


@dataclass(frozen=True)
class Case:
    """One stack (or cine) to evaluate; ``label_frames`` lists per-frame label files of a cine."""

    name: str
    patient: str
    image_path: Path | None
    label_path: Path | None
    kind: CaseKind
    group: str | None = None
    label_frames: tuple[tuple[int, Path], ...] = ()  # (0-based frame, 3D label file)
    label_source: Literal["acdc", "sunnybrook", "phantom"] | None = None
    phantom: tuple[tuple[str, object], ...] = ()  # make_phantom keywords of a generated case

    @property
    def has_labels(self) -> bool:
        return self.label_path is not None or bool(self.label_frames) or bool(self.phantom)


@dataclass(frozen=True)
class LoadedCase:
    """A case in memory; ``labels`` is shaped like the image, ``annotated`` like its slice axes.

    ``annotated`` is ``(Z,)`` or ``(T, Z)``: True where an expert drew contours, so
    unlabelled slices are not mistaken for empty ones. ``structures`` are the label
    values that were contoured at all. ``structure_annotated`` narrows ``annotated`` for
    structures drawn on fewer slices than the others (Sunnybrook: the epicardium, hence the
    myocardium, only at ED while the endocardium is drawn at ED and ES); see :meth:`annotation_of`.
    """

    case: Case
    volume: Volume
    labels: np.ndarray | None = None
    annotated: np.ndarray | None = None
    structures: tuple[int, ...] = ()
    structure_annotated: dict[int, np.ndarray] = field(default_factory=dict)

    def annotation_of(self, structure: int) -> np.ndarray | None:
        """Where ``structure`` was contoured (shaped like ``annotated``): its own mask if it has one, else ``annotated``."""
        return self.structure_annotated.get(structure, self.annotated)


def find_cases(
    path: str | Path, split: SplitChoice = "test", *, phantom_count: int = 4, phantom_options: dict | None = None
) -> list[Case]:
    """Cases under ``path`` in ``split``, sorted by name.

    ``"phantom"`` instead of a path gives ``phantom_count`` generated cases, seeds
    0, 1, ...; ``phantom_options`` are :func:`calid.phantom.make_phantom` keywords
    that replace :data:`PHANTOM_DEFAULTS` (``n_frames`` > 1 makes cines). Phantoms
    are never trained on, so they belong to every split.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if str(path) == PHANTOM:
        return _phantom_cases(phantom_count, phantom_options or {})
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{str(path)!r} does not exist; give a data folder, an image file or 'phantom'")
    cases = [_plain_case(path)] if path.is_file() else _folder_cases(path)
    return [case for case in cases if split == "all" or split_of(case.patient) == split]


def _folder_cases(folder: Path) -> list[Case]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    names = {p.name for p in files}
    groups = _groups(folder / "info.csv")
    cases = []
    for file in files:
        if match := _ACDC_FRAME.match(file.name):
            label = file.with_name(file.name.replace(".nii.gz", "_gt.nii.gz"))
            cases.append(Case(match[1] + "_" + match[2], match[1], file,
                              label if label.name in names else None, "3d",
                              groups.get(match[1]), label_source="acdc"))
        elif match := _ACDC_CINE.match(file.name):
            cases.append(Case(match[1], match[1], file, None, "cine", groups.get(match[1]),
                              label_frames=_cine_label_files(files, match[1]), label_source="acdc"))
        elif file.name.endswith("_4d.nii.gz") and file.name.replace("_4d", "_lvmask_4d") in names:
            patient = file.name[: -len("_4d.nii.gz")]
            cases.append(Case(patient, patient, file, file.with_name(f"{patient}_lvmask_4d.nii.gz"), "cine",
                              groups.get(patient), label_source="sunnybrook"))
        elif not _LABEL_FILE.search(file.name) and not _ACDC_CINE_GT.match(file.name):
            kind = _image_kind(file)
            if kind is not None:
                cases.append(Case(_stem(file), _stem(file), file, None, kind))
    return sorted(cases, key=lambda case: case.name)


def _plain_case(file: Path) -> Case:
    kind = _image_kind(file)
    if kind is None:
        raise InputFileError(f"{str(file)!r} is not a readable 3D or 4D image; give a NIfTI, NRRD or MetaImage file")
    return Case(_stem(file), _stem(file), file, None, kind)


def _cine_label_files(files: list[Path], patient: str) -> tuple[tuple[int, Path], ...]:
    found = []
    for file in files:
        match = _ACDC_CINE_GT.match(file.name)
        if match and match[1] == patient:
            found.append((int(match[2]) - 1, file))  # file names count frames from 1
    return tuple(sorted(found))


def _groups(info_csv: Path) -> dict[str, str]:
    """Patient -> diagnostic group from an ACDC ``info.csv`` (column patient or id)."""
    if not info_csv.is_file():
        return {}
    with info_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row.get("patient") or row.get("id"): row["group"] for row in rows if row.get("group")}


def _image_kind(file: Path) -> CaseKind | None:
    """"3d" or "cine" from the file header, None when SimpleITK cannot read it as an image."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(file))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    size = reader.GetSize()
    if len(size) == 4 and size[3] > 1:
        return "cine"
    return "3d" if len(size) >= 3 and size[2] > 1 else None


def _stem(file: Path) -> str:
    name = file.name
    for suffix in (".nii.gz", ".seq.nrrd"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return file.stem


def _phantom_cases(count: int, options: dict) -> list[Case]:
    if count < 1:
        raise InputError(f"phantom count must be >= 1, not {count}")
    settings = {**PHANTOM_DEFAULTS, **options}
    kind: CaseKind = "cine" if settings["n_frames"] > 1 else "3d"
    settings["as_3d"] = kind == "3d"
    return [
        Case(f"phantom{seed:02d}", f"phantom{seed:02d}", None, None, kind, label_source="phantom",
             phantom=tuple(sorted({**settings, "seed": seed}.items())))
        for seed in range(count)
    ]


# -- loading -----------------------------------------------------------------


def load_case(case: Case) -> LoadedCase:
    """Read (or generate) a case with its labels in ACDC values."""
    if case.phantom:
        return _load_phantom(case)
    from calid.io.read_write import read

    volume = read(case.image_path)
    if case.label_source == "sunnybrook" and case.label_path is not None:
        return _with_sunnybrook_labels(case, volume, read(case.label_path).array)
    if case.label_frames:
        labels = np.zeros(volume.array.shape, np.uint8)
        annotated = np.zeros(volume.array.shape[:2], bool)
        for frame, path in case.label_frames:
            labels[frame] = _checked_labels(read(path).array, volume.array.shape[1:], path)
            annotated[frame] = True
        return LoadedCase(case, volume, labels, annotated, (RV, MYO, LV))
    if case.label_path is not None:
        labels = _checked_labels(read(case.label_path).array, volume.array.shape, case.label_path)
        return LoadedCase(case, volume, labels, np.ones(volume.array.shape[:-2], bool), (RV, MYO, LV))
    return LoadedCase(case, volume)


def _checked_labels(labels: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if labels.shape != tuple(shape):
        raise InputFileError(f"labels {str(path)!r} must have the image's shape {tuple(shape)}, not {labels.shape}")
    return labels.astype(np.uint8)


def _with_sunnybrook_labels(case: Case, volume: Volume, mask: np.ndarray) -> LoadedCase:
    """Sunnybrook masks hold contours only where experts drew them: that is what is annotated."""
    mask = _checked_labels(mask, volume.array.shape, case.label_path)
    labels = np.zeros_like(mask)
    for value, acdc_value in _SUNNYBROOK_TO_ACDC.items():
        labels[mask == value] = acdc_value
    annotated = labels.reshape(*labels.shape[:-2], -1).any(axis=-1)
    # a slice with an endocardial contour but no epicardial one (every ES slice) says nothing of the
    # myocardium: scoring MYO there would count every predicted myocardium pixel as wrong
    epicardium_drawn = (labels == MYO).reshape(*labels.shape[:-2], -1).any(axis=-1)
    return LoadedCase(case, volume, labels, annotated, (MYO, LV), {MYO: epicardium_drawn})


def _load_phantom(case: Case) -> LoadedCase:
    from calid.phantom.generator import make_phantom

    phantom = make_phantom(**dict(case.phantom))
    labels = phantom.labels.array
    return LoadedCase(case, phantom.image, labels, np.ones(labels.shape[:-2], bool), (RV, MYO, LV))
