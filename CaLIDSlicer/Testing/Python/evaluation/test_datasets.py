"""Case discovery on tiny folders that mimic each shared-data layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calid import io
from calid.evaluation.datasets import find_cases, load_case
from calid.errors import InputError, InputFileError
from calid.io.volume import Volume


def _write(path: Path, array: np.ndarray) -> Path:
    io.write(Volume(array, spacing=(1.5, 1.5, 10.0)), path)
    return path


@pytest.fixture
def acdc_folder(tmp_path):
    for number in (1, 14):
        for phase in ("ED", "ES"):
            _write(tmp_path / f"patient{number:03d}_{phase}.nii.gz", np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8))
            labels = np.zeros((3, 8, 8), np.uint8)
            labels[1, 2:4, 2:5] = 3
            _write(tmp_path / f"patient{number:03d}_{phase}_gt.nii.gz", labels)
    (tmp_path / "info.csv").write_text("patient,group,n_frames\npatient001,DCM,30\npatient014,DCM,30\n")
    return tmp_path


def test_acdc_layout_gives_one_labelled_3d_case_per_phase_in_the_split(acdc_folder):
    test = find_cases(acdc_folder, "test")
    assert [c.name for c in test] == ["patient014_ED", "patient014_ES"]
    assert all(c.kind == "3d" and c.group == "DCM" and c.label_path.name.endswith("_gt.nii.gz") for c in test)
    assert [c.name for c in find_cases(acdc_folder, "train")] == ["patient001_ED", "patient001_ES"]
    assert len(find_cases(acdc_folder, "all")) == 4
    loaded = load_case(test[0])
    assert loaded.labels.shape == loaded.volume.array.shape and loaded.labels.max() == 3
    assert loaded.annotated.shape == (3,) and loaded.annotated.all()


def test_acdc_cine_labels_sit_on_their_zero_based_frames(tmp_path):
    _write(tmp_path / "patient015_4d.nii.gz", np.ones((4, 3, 8, 8), np.int16) * np.arange(4)[:, None, None, None])
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[0, 1:3, 1:3] = 2
    _write(tmp_path / "patient015_ED_frame01_gt.nii.gz", labels)
    _write(tmp_path / "patient015_ES_frame03_gt.nii.gz", labels * 0 + (labels > 0))
    (case,) = find_cases(tmp_path, "test")
    assert case.kind == "cine" and case.label_path is None
    assert [frame for frame, _ in case.label_frames] == [0, 2]
    loaded = load_case(case)
    assert loaded.annotated[:, 0].tolist() == [True, False, True, False]
    assert loaded.labels[0].max() == 2 and loaded.labels[2].max() == 1 and loaded.labels[1].max() == 0


def test_sunnybrook_masks_become_acdc_values_and_mark_contoured_slices(tmp_path):
    _write(tmp_path / "SCD0000101_4d.nii.gz", np.ones((2, 3, 8, 8), np.int16))
    mask = np.zeros((2, 3, 8, 8), np.uint8)
    mask[1, 2, 3:5, 3:5] = 1  # LV blood pool
    mask[1, 2, 2, 2:6] = 2  # myocardium
    _write(tmp_path / "SCD0000101_lvmask_4d.nii.gz", mask)
    (case,) = find_cases(tmp_path, "test")
    assert case.name == "SCD0000101" and case.kind == "cine" and case.label_source == "sunnybrook"
    loaded = load_case(case)
    assert sorted(np.unique(loaded.labels).tolist()) == [0, 2, 3]
    assert loaded.annotated.tolist() == [[False] * 3, [False, False, True]]
    assert loaded.structures == (2, 3)


def test_sunnybrook_myocardium_counts_as_contoured_only_where_the_epicardium_was_drawn(tmp_path):
    """Sunnybrook experts drew the epicardium at ED only: an ES slice with an LV contour says nothing of MYO."""
    _write(tmp_path / "SCD0000101_4d.nii.gz", np.ones((2, 3, 8, 8), np.int16))
    mask = np.zeros((2, 3, 8, 8), np.uint8)
    mask[0, 1, 3:5, 3:5] = 1  # ED: blood pool and myocardium
    mask[0, 1, 2, 2:6] = 2
    mask[1, 1, 3:5, 3:5] = 1  # ES: blood pool only
    _write(tmp_path / "SCD0000101_lvmask_4d.nii.gz", mask)
    (case,) = find_cases(tmp_path, "test")
    loaded = load_case(case)
    assert loaded.annotation_of(3).tolist() == [[False, True, False], [False, True, False]]  # LV: both frames
    assert loaded.annotation_of(2).tolist() == [[False, True, False], [False, False, False]]  # MYO: ED only


def test_plain_folder_gives_one_unlabelled_case_per_readable_image(tmp_path):
    _write(tmp_path / "stack.nrrd", np.zeros((4, 8, 8), np.float32))
    _write(tmp_path / "cine.nii.gz", np.zeros((3, 4, 8, 8), np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    cases = find_cases(tmp_path, "test")
    assert [(c.name, c.kind, c.has_labels) for c in cases] == [("cine", "cine", False), ("stack", "3d", False)]
    assert find_cases(tmp_path / "stack.nrrd")[0].image_path.name == "stack.nrrd"


def test_phantom_keyword_makes_seeded_cases_in_every_split():
    cases = find_cases("phantom", "val", phantom_count=2, phantom_options={"n_frames": 3})
    assert [c.name for c in cases] == ["phantom00", "phantom01"]
    assert all(c.kind == "cine" and c.image_path is None and c.has_labels for c in cases)
    assert dict(cases[1].phantom)["seed"] == 1


def test_bad_split_and_missing_path_are_refused(tmp_path):
    with pytest.raises(InputError, match="split must be one of"):
        find_cases(tmp_path, "testing")
    with pytest.raises(InputFileError, match="does not exist"):
        find_cases(tmp_path / "nowhere")
