"""Held-out-slice protocol: only dropped slices are scored, on the sparse input's scale."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calid import cli
from calid.evaluation.datasets import Case, LoadedCase, find_cases
from calid.errors import InputError
from calid.evaluation.evaluate import evaluate, evaluate_case, hold_out, intensity_scale, reconstruct_options
from calid.evaluation.report import markdown, summarize, write_csv
from calid.io.volume import Volume


def ramp_case(n_slices: int = 7, labelled: bool = True) -> LoadedCase:
    """Slice z holds 10 * z + x / 4: linear along z, not constant in-plane."""
    z, _, x = np.meshgrid(np.arange(n_slices), np.arange(24), np.arange(24), indexing="ij")
    volume = Volume((10.0 * z + x / 4.0).astype(np.float32), spacing=(1.5, 1.5, 8.0), origin=(4.0, -2.0, 30.0))
    labels = None
    if labelled:
        labels = np.zeros(volume.array.shape, np.uint8)
        labels[2, 11:13, 11:13] = 3
    case = Case("ramp", "ramp", None, None, "3d")
    annotated = None if labels is None else np.ones(n_slices, bool)
    return LoadedCase(case, volume, labels, annotated, (3,))


def test_hold_out_keeps_every_kth_slice_with_the_sparse_geometry(oblique_stack):
    held = hold_out(oblique_stack, 2)  # 6 slices -> 5 used, 1 trimmed
    assert held.trimmed == 1 and held.truth.n_slices == 5 and held.dropped == (1, 3)
    np.testing.assert_array_equal(held.sparse.array, oblique_stack.array[[0, 2, 4]])
    assert held.sparse.spacing[2] == pytest.approx(20.0)
    assert held.sparse.origin == oblique_stack.origin
    np.testing.assert_allclose(held.sparse.direction, oblique_stack.direction)


def test_hold_out_trims_trailing_slices_for_larger_k(oblique_cine):
    held = hold_out(oblique_cine, 3)  # 5 slices: (5 - 1) % 3 = 1 -> 4 used
    assert held.trimmed == 1 and held.truth.array.shape[:2] == (4, 4) and held.dropped == (1, 2)
    assert held.sparse.array.shape[1] == 2 and held.sparse.frame_times == oblique_cine.frame_times
    with pytest.raises(InputError, match="at least 4 slices"):
        hold_out(oblique_cine.replace(array=oblique_cine.array[:, :3]), 3)
    with pytest.raises(InputError, match="keep_every must be"):
        hold_out(oblique_cine, 1)


def test_linear_is_perfect_on_a_ramp_and_only_dropped_slices_count():
    loaded = ramp_case()
    result = evaluate_case(loaded, ["linear", "nearest"])
    linear, nearest = result.rows
    assert linear["psnr"] == math.inf and linear["psnr_heart"] == math.inf
    assert linear["contrast_heart"] == pytest.approx(1.0) and linear["gradient_heart"] == pytest.approx(1.0)
    assert linear["ssim"] == pytest.approx(1.0, abs=1e-6)
    # nearest copies the slice below: error 10 on every dropped slice, 0 on kept ones.
    scale = intensity_scale(hold_out(loaded.volume, 2).sparse)
    assert scale == pytest.approx(np.percentile(loaded.volume.array[::2], 99.5))
    assert nearest["psnr"] == pytest.approx(-20 * np.log10(10.0 / scale), rel=1e-5)
    assert nearest["trimmed"] == 0 and nearest["slices"] == 7


class LabelsOf:
    """A stand-in segmenter that returns fixed labels, shifted by one pixel on dropped slices."""

    available = True

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __call__(self, volume: Volume) -> np.ndarray:
        assert volume.array.shape == self.labels.shape  # the dense reconstruction
        return np.roll(self.labels, 1, axis=-1)


def test_dice_and_hd95_score_the_segmentation_of_dropped_annotated_slices():
    loaded = ramp_case()
    loaded.labels[3, 4:8, 4:8] = 3  # a dropped slice; slice 2 is kept and must not count
    row = evaluate_case(loaded, ["linear"], segmenter=LabelsOf(loaded.labels)).rows[0]
    assert row["dice_lv"] == pytest.approx(2 * 12 / 32)  # 4x4 square shifted by one column
    assert row["hd95_lv"] == pytest.approx(1.5)  # one pixel of 1.5 mm
    assert "dice_rv" not in row  # only the structures the case has contours for


def test_a_structure_is_scored_only_on_slices_where_it_was_contoured():
    """A slice drawn for LV but not for MYO (Sunnybrook ES) leaves MYO unscored instead of counting it all wrong."""
    loaded = ramp_case()
    loaded.labels[1, 4:8, 4:8] = 3  # dropped slice 1: LV drawn, MYO not
    loaded.labels[3, 4:8, 4:8] = 3  # dropped slice 3: LV and MYO drawn
    loaded.labels[3, 3, 4:8] = 2
    predicted = loaded.labels.copy()
    predicted[1, 2, 4:8] = 2  # the segmenter finds myocardium on slice 1, where nobody drew its contour
    only_lv = np.ones(loaded.labels.shape[0], bool)
    only_lv[1] = False
    narrowed = LoadedCase(loaded.case, loaded.volume, loaded.labels, loaded.annotated, (2, 3), {2: only_lv})
    row = evaluate_case(narrowed, ["linear"], segmenter=LabelsOf(predicted)).rows[0]
    # LabelsOf shifts every label one column: a 4-pixel myocardium line keeps 3 of its pixels
    assert row["dice_myo"] == pytest.approx(2 * 3 / 8) and row["dice_lv"] == pytest.approx(2 * 2 * 12 / 64)
    widened = LoadedCase(loaded.case, loaded.volume, loaded.labels, loaded.annotated, (2, 3))
    assert evaluate_case(widened, ["linear"], segmenter=LabelsOf(predicted)).rows[0]["dice_myo"] == pytest.approx(2 * 3 / 12)


class RecordingLabels(LabelsOf):
    """LabelsOf that also records the frames of every volume it was asked to label (frame-wise, like the segmenter)."""

    def __init__(self, labels: np.ndarray) -> None:
        super().__init__(labels)
        self.calls: list[tuple[float, ...]] = []

    def __call__(self, volume: Volume) -> np.ndarray:
        self.calls.append(volume.frame_times)
        index = [self.times.index(t) for t in volume.frame_times]
        return np.roll(self.labels[index], 1, axis=-1)


def test_only_frames_with_contours_are_segmented_and_the_scores_do_not_change(oblique_cine):
    labels = np.zeros(oblique_cine.array.shape, np.uint8)
    labels[1, 1, 4:9, 4:9] = 3  # frames 1 and 3 contoured (dropped slice 1), as ED and ES are in a cine
    labels[3, 1, 5:8, 5:8] = 3
    annotated = np.zeros(oblique_cine.array.shape[:2], bool)
    annotated[[1, 3]] = True
    loaded = LoadedCase(Case("cine", "p1", None, None, "cine"), oblique_cine, labels, annotated, (3,))
    recording = RecordingLabels(labels)
    recording.times = list(oblique_cine.frame_times)
    cut_rows = evaluate_case(loaded, ["nearest"], segmenter=recording).rows
    assert recording.calls == [(40.0, 120.0)]  # one call, the two contoured frames only
    # each contoured frame scored against its own labels: squares shifted one column
    assert cut_rows[1]["dice_lv"] == pytest.approx(2 * 20 / 50) and cut_rows[3]["dice_lv"] == pytest.approx(2 * 6 / 18)
    assert all(math.isnan(r["dice_lv"]) for r in cut_rows[0::2])  # uncontoured frames stay unscored


def test_cases_without_labels_get_no_heart_box_scores():
    row = evaluate_case(ramp_case(labelled=False), ["linear"]).rows[0]
    assert math.isnan(row["psnr_heart"]) and math.isnan(row["ssim_heart"]) and row["psnr"] == math.inf
    assert math.isnan(row["contrast_heart"]) and math.isnan(row["gradient_heart"])


def test_cine_rows_per_frame_with_temporal_error_and_frame_subsampling(oblique_cine):
    case = Case("cine", "p1", None, None, "cine")
    result = evaluate_case(LoadedCase(case, oblique_cine), ["nearest"], frame_step=2)
    assert [r["frame"] for r in result.rows] == [0, 2]
    (temporal,) = result.temporal
    assert temporal["frames"] == 2 and temporal["temporal_error"] > 0


def test_diffusion_options_reach_only_methods_that_take_them():
    options = {"seed": 3, "steps": 5, "samples": None, "device": "cpu", "unknown": 1}
    assert reconstruct_options("linear", options) == {"seed": 3, "device": "cpu"}
    assert reconstruct_options("calid", options) == {"seed": 3, "steps": 5, "device": "cpu"}


def test_summary_counts_patients_and_volumes_and_writes_csv(tmp_path):
    cases = find_cases("phantom", phantom_count=2, phantom_options={"size": (48, 48), "n_slices": 5})
    evaluation = evaluate(cases, ["nearest", "linear"])
    summary = summarize(evaluation)
    assert [s["method"] for s in summary] == ["nearest", "linear"]
    assert all(s["n_patients"] == 2 and s["n_volumes"] == 2 for s in summary)
    assert summary[1]["psnr"] > summary[0]["psnr"]  # the phantom is smooth along z
    table = markdown(evaluation)
    assert "| linear |" in table and "n = 2 patients, 2 volumes" in table
    lines = write_csv(evaluation, tmp_path / "rows.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("case,patient,group")


def test_cli_on_phantom_writes_json(tmp_path, capsys):
    out = tmp_path / "phantom.json"
    code = cli.main(["evaluate", "phantom", "--methods", "linear,nearest", "--phantom-count", "2",
                     "--phantom-size", "48", "--progress", "none", "--json", str(out)])
    assert code == 0
    assert "| nearest |" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert {s["method"] for s in record["summary"]} == {"linear", "nearest"}
    assert len(record["rows"]) == 4 and record["settings"]["keep_every"] == 2
    assert all(isinstance(r["psnr_heart"], float) for r in record["rows"])


def test_cli_refuses_keep_every_one(capsys):
    code = cli.main(["evaluate", "phantom", "-k", "1", "--phantom-count", "1", "--progress", "none"])
    assert code == 2 and "keep_every must be" in capsys.readouterr().err


@pytest.mark.data
def test_one_real_acdc_case(shared_data):
    (case,) = find_cases(shared_data / "acdc", "test")[:1]
    evaluation = evaluate([case], ["linear"])
    (row,) = evaluation.rows
    assert row["patient"] == "patient014" and row["group"] is not None
    assert 5.0 < row["psnr"] < 40.0 and 0.0 < row["ssim"] < 1.0 and np.isfinite(row["psnr_heart"])


class SlowLabels(LabelsOf):
    """A segmenter that takes 0.4 s: its time must not show up in the method's seconds."""

    def __call__(self, volume):
        import time

        time.sleep(0.4)
        return super().__call__(volume)


def test_seconds_are_the_reconstruction_only_and_the_table_says_so():
    """Issue 18.12: the time column is the method's reconstruction time, named and explained."""
    loaded = ramp_case()
    evaluation = evaluate_case(loaded, ["linear"], segmenter=SlowLabels(loaded.labels))
    assert 0 < evaluation.rows[0]["seconds"] < 0.2
    evaluation.settings["keep_every"] = 2
    table = markdown(evaluation)
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    assert header.rstrip(" |").endswith("Reconstruction s / volume")
    assert "reconstruction alone" in table


def test_no_dice_skips_segmenting_every_output(tmp_path, monkeypatch, capsys):
    import calid.evaluation.evaluate as evaluate_module

    def refuse(self, volume):
        raise AssertionError("--no-dice still segmented an output")

    monkeypatch.setattr(evaluate_module.Segmenter, "__call__", refuse)
    out = tmp_path / "phantom.json"
    assert cli.main(["evaluate", "phantom", "--methods", "linear", "--phantom-count", "1", "--phantom-size", "48",
                     "--progress", "none", "--no-dice", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert not any(key.startswith(("dice_", "hd95_")) for row in record["rows"] for key in row)
    assert any("--no-dice" in note for note in record["notes"])
    assert "Dice" not in capsys.readouterr().out.split("\n\n")[1]
