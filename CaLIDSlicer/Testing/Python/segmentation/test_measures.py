"""Cardiac measures on labelmaps of known volume: boxes, two-frame EF, cylinders by voxels and discs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from calid.errors import InputError
from calid.segmentation.labels import LV, MYO, RV
from calid.segmentation.measures import MYOCARDIUM_DENSITY, measure, structure_volumes_ml
from calid.io.volume import Volume

SPACING = (1.5, 2.0, 5.0)  # one voxel = 15 mm^3


def boxes(lv_slices: int, rv_slices: int = 2, myo_slices: int = 3) -> np.ndarray:
    """(Z=8, 20, 20): LV box 10x10 px, RV 5x4 px, MYO 4x5 px, on the given number of slices."""
    labels = np.zeros((8, 20, 20), np.uint8)
    labels[:lv_slices, 0:10, 0:10] = LV
    labels[:rv_slices, 12:17, 0:4] = RV
    labels[:myo_slices, 12:16, 10:15] = MYO
    return labels


def test_box_volumes_are_exact_ml():
    volumes = structure_volumes_ml(Volume(boxes(4), spacing=SPACING))
    assert volumes[LV] == pytest.approx(400 * 15 / 1000)  # 6 ml
    assert volumes[RV] == pytest.approx(40 * 15 / 1000)
    assert volumes[MYO] == pytest.approx(60 * 15 / 1000)


def test_two_frames_give_ef_sv_and_mass():
    cine = Volume(np.stack([boxes(2), boxes(4), boxes(3, rv_slices=1)]), spacing=SPACING, frame_times=(0, 30, 60))
    result = measure(cine)
    assert (result.ed_frame, result.es_frame) == (1, 0)  # largest and smallest LV
    summary = result.summary()
    assert summary["lv_edv"] == pytest.approx(6.0) and summary["lv_esv"] == pytest.approx(3.0)
    assert summary["lv_sv"] == pytest.approx(3.0) and summary["lv_ef"] == pytest.approx(50.0)
    assert summary["rv_ef"] == pytest.approx(0.0)  # RV the same size at both frames
    assert summary["lv_mass"] == pytest.approx(MYOCARDIUM_DENSITY * 0.9)
    assert result.frame_times == (0.0, 30.0, 60.0)


def test_a_list_of_frames_and_given_ed_es_agree_with_a_cine():
    frames = [Volume(boxes(4), spacing=SPACING), Volume(boxes(1), spacing=SPACING)]
    from_list = measure(frames, ed=0, es=1).summary()
    from_cine = measure(Volume(np.stack([f.array for f in frames]), spacing=SPACING)).summary()
    assert from_list == pytest.approx(from_cine)
    assert from_list["lv_ef"] == pytest.approx(75.0)
    forced = measure(frames, ed=1, es=0).summary()
    assert forced["lv_ef"] == pytest.approx(-300.0)  # the caller's frames are used as given


def test_single_frame_has_no_ejection_fraction():
    summary = measure(Volume(boxes(4), spacing=SPACING)).summary()
    assert summary["lv_edv"] == pytest.approx(6.0)
    assert summary["lv_ef"] is None and summary["lv_sv"] is None and summary["lv_esv"] is None
    assert "ESV n/a" in measure(Volume(boxes(4), spacing=SPACING)).report()


def cylinder(n_slices: int, first: int, last: int, radius_mm: float, pixel: float) -> np.ndarray:
    size = int(2 * radius_mm / pixel) + 8
    yy, xx = (np.mgrid[:size, :size] - (size - 1) / 2) * pixel
    disc = (yy**2 + xx**2) <= radius_mm**2
    labels = np.zeros((n_slices, size, size), np.uint8)
    labels[first : last + 1][:, disc] = LV
    return labels


def test_disc_summation_matches_voxel_counting_on_a_cylinder():
    # dense grid, 1 mm slices; every other slice synthesised (as a x2 reconstruction would be)
    labels = cylinder(20, 1, 16, radius_mm=12.0, pixel=0.5)
    volume = Volume(labels, spacing=(0.5, 0.5, 1.0), synthesized=tuple(range(1, 20, 2)))
    truth_ml = np.pi * 12.0**2 * 16 / 1000
    by_voxels = measure(volume, method="voxels").summary()["lv_edv"]
    by_discs = measure(volume, method="discs").summary()["lv_edv"]
    assert by_voxels == pytest.approx(truth_ml, rel=0.02)
    assert by_discs == pytest.approx(by_voxels)  # 8 acquired discs x 2 mm = 16 dense slices x 1 mm


def test_discs_ignore_what_was_synthesised():
    labels = cylinder(9, 0, 8, radius_mm=8.0, pixel=1.0)
    labels[1::2] = 0  # synthesised slices that missed the heart entirely
    volume = Volume(labels, spacing=(1.0, 1.0, 2.0), synthesized=(1, 3, 5, 7))
    by_discs = measure(volume, method="discs").summary()["lv_edv"]
    by_voxels = measure(volume, method="voxels").summary()["lv_edv"]
    assert by_discs == pytest.approx(2 * by_voxels)  # 5 discs of 4 mm vs the same 5 slices of 2 mm
    assert measure(volume.replace(synthesized=()), method="discs").summary()["lv_edv"] == pytest.approx(by_voxels)


def test_csv_json_and_report(tmp_path):
    result = measure([Volume(boxes(4), spacing=SPACING), Volume(boxes(2), spacing=SPACING)])
    data = json.loads(result.to_json(tmp_path / "m.json").read_text())
    assert data["summary"]["lv_ef"] == pytest.approx(50.0) and data["units"]["lv_mass"] == "g"
    rows = list(csv.DictReader(result.to_csv(tmp_path / "m.csv").open()))
    by_key = {(row["quantity"], row["frame"]): row for row in rows}
    assert float(by_key[("lv_ef", "")]["value"]) == pytest.approx(50.0)
    assert float(by_key[("lv_volume", "1")]["value"]) == pytest.approx(3.0)
    assert "EF 50.0 %" in result.report()
    assert not list(tmp_path.glob(".*part*"))  # written atomically, nothing left behind


def test_refusals_name_the_problem():
    with pytest.raises(InputError, match="method must be"):
        measure(Volume(boxes(2), spacing=SPACING), method="simpson")
    with pytest.raises(InputError, match=r"ed frame must be in \[0, 1\)"):
        measure(Volume(boxes(2), spacing=SPACING), ed=3)
    with pytest.raises(InputError, match="integer label values"):
        measure(Volume(boxes(2).astype(np.float32), spacing=SPACING))
    with pytest.raises(InputError, match="non-empty sequence"):
        measure([])
