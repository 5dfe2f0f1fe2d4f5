"""segment(): labels on the input's own grid for stacks and cines; the calid segment command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from calid.cli import main
from calid.errors import InputError, ModelError
from calid.io.read_write import read, read_segmentation, write
from calid.segmentation.labels import LV, MYO, RV
from calid.segmentation.inference import (
    DEFAULT_MODEL,
    from_model_grid,
    keep_largest_components,
    segment,
    segment_array,
    to_model_grid,
)
from calid.io.volume import Volume

TINY = {"channels": [4, 8], "strides": [2], "num_res_units": 0, "pixel_size": 2.0, "window": 8}


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A randomly initialised segmenter installed under the default name, found via CALID_MODEL_DIR."""
    from calid.models.segmenter import SliceSegmenter
    from calid.models.format import ModelConfig, save_model

    torch.manual_seed(0)
    config = ModelConfig(DEFAULT_MODEL, "0.0.0", "segmenter", "calid-segmenter", kwargs=TINY)
    folder = save_model(SliceSegmenter(**TINY), config, tmp_path / "models" / DEFAULT_MODEL, "# tiny test model")
    monkeypatch.setenv("CALID_MODEL_DIR", str(tmp_path / "models"))
    return folder


def test_labels_keep_the_geometry_of_an_oblique_stack(tiny_model, oblique_stack):
    stack = oblique_stack.replace(synthesized=(1, 3))
    result = segment(stack, device="cpu")
    assert result.labels.same_geometry(stack)
    assert result.labels.array.shape == stack.array.shape and result.labels.array.dtype == np.uint8
    assert set(np.unique(result.labels.array)) <= {0, RV, MYO, LV}
    assert result.labels.synthesized == (1, 3) and result.model == f"{DEFAULT_MODEL} 0.0.0"


def test_a_cine_is_labelled_frame_by_frame(tiny_model, oblique_cine):
    result = segment(oblique_cine, device="cpu", model=tiny_model)
    assert result.labels.array.shape == oblique_cine.array.shape
    assert result.labels.frame_times == oblique_cine.frame_times and result.labels.same_geometry(oblique_cine)
    single = segment(oblique_cine.frame(2), device="cpu", model=tiny_model)
    np.testing.assert_array_equal(result.labels.array[2], single.labels.array)


def test_model_grid_round_trip_keeps_smooth_images_and_labels():
    yy, xx = np.mgrid[:30, :40]
    smooth = np.stack([np.sin(xx / 6.0) + np.cos(yy / 5.0)] * 2).astype(np.float32)
    spacing_xy = (1.3, 0.9)
    small = to_model_grid(smooth, spacing_xy, 1.5)
    assert small.shape == (2, int(np.ceil(29 * 0.9 / 1.5)) + 1, int(np.ceil(39 * 1.3 / 1.5)) + 1)
    back = from_model_grid(small, 1.5, (30, 40), spacing_xy)
    error = np.abs(back - smooth)  # values span [-2, 2]
    assert error.mean() < 0.015 and error.max() < 0.1  # no zero border from extrapolation
    labels = np.zeros((1, 30, 40), np.uint8)
    labels[0, 8:22, 10:30] = LV
    onehot = np.eye(4, dtype=np.float32)[to_model_grid(labels, spacing_xy, 1.5, labels=True)]
    recovered = from_model_grid(onehot, 1.5, (30, 40), spacing_xy).argmax(-1)
    assert (recovered == labels).mean() > 0.97


class RampNetwork:
    """A stand-in network whose LV logit grows from left to right whatever the image shows."""

    pixel_size, window = 1.0, 16

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(images.shape[0], 4, *images.shape[-2:])
        logits[:, LV] = 4 * torch.linspace(-1, 1, images.shape[-1])
        return logits


def test_flip_averaging_maps_each_mirror_image_back():
    volume = Volume(np.ones((2, 12, 16), np.float32))
    plain = segment_array(volume, RampNetwork(), keep_largest=False, average_flips=False)
    assert (plain[..., -1] == LV).all() and (plain[..., 0] == 0).all()
    averaged = segment_array(volume, RampNetwork(), keep_largest=False, average_flips=True)
    np.testing.assert_array_equal(averaged, averaged[..., ::-1])  # left-right mirror was undone
    assert (averaged[..., 0] == LV).all()


def test_only_the_largest_piece_of_each_structure_stays():
    labels = np.zeros((3, 20, 20), np.uint8)
    labels[:, 2:10, 2:10] = LV
    labels[1, 15:17, 15:17] = LV  # stray blob
    labels[1, 12:14, 2:4] = RV  # a lone RV piece is its own largest
    cleaned = keep_largest_components(labels)
    assert (cleaned[1, 15:17, 15:17] == 0).all()
    assert (cleaned[:, 2:10, 2:10] == LV).all() and (cleaned[1, 12:14, 2:4] == RV).all()


def test_missing_model_and_bad_device_are_reported(monkeypatch, tmp_path, oblique_stack):
    monkeypatch.setenv("CALID_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="not installed"):
        segment(oblique_stack, device="cpu", model="no-such-segmenter")
    with pytest.raises(InputError, match="device must be"):
        segment(oblique_stack, device="tpu")


def test_cli_writes_seg_nrrd_and_measures(tiny_model, tmp_path, oblique_stack, capsys):
    source = write(oblique_stack, tmp_path / "stack.nrrd")
    target, measures = tmp_path / "labels.seg.nrrd", tmp_path / "measures.json"
    code = main(["segment", str(source), "-o", str(target), "--measures", str(measures),
                 "--device", "cpu", "--progress", "none"])
    assert code == 0
    labels = read_segmentation(target)
    assert labels.same_geometry(oblique_stack, atol=1e-4)
    data = json.loads(measures.read_text())
    assert data["method"] == "voxels" and len(data["lv_volume_ml"]) == 1
    voxel_ml = np.prod(oblique_stack.spacing) / 1000
    assert data["summary"]["lv_edv"] == pytest.approx(np.count_nonzero(labels.array == LV) * voxel_ml, rel=1e-6)
    captured = capsys.readouterr()
    assert "wrote" in captured.out
    # the estimate comes before the work, names the job and has no terminal escape codes
    assert captured.err.startswith("estimate: about ") and f"segmentation, {oblique_stack.n_slices} slices of" in captured.err
    assert "\x1b" not in captured.err


def test_cli_cine_labelmap_with_csv_and_json_progress(tiny_model, tmp_path, oblique_cine, capsys):
    source = write(oblique_cine, tmp_path / "cine.nii.gz")
    target, measures = tmp_path / "labels.nii.gz", tmp_path / "measures.csv"
    code = main(["segment", str(source), "-o", str(target), "--measures", str(measures), "--method", "discs", "--no-flips",
                 "--device", "cpu", "--progress", "json"])
    assert code == 0
    assert read(target).array.shape == oblique_cine.array.shape
    assert measures.read_text().startswith("quantity,frame,value,unit,method")
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["outputs"] == [str(target), str(measures)]
    assert events[0]["event"] == "estimate" and events[0]["stages"]["segment"] > 0  # first, before any work


def test_cli_refuses_a_cine_into_seg_nrrd_and_writes_nothing(tiny_model, tmp_path, oblique_cine, capsys):
    source = write(oblique_cine, tmp_path / "cine.nii.gz")
    target = tmp_path / "labels.seg.nrrd"
    code = main(["segment", str(source), "-o", str(target), "--device", "cpu", "--progress", "none"])
    assert code == 2 and "must be written as .nii.gz" in capsys.readouterr().err
    assert not target.exists()


def test_cli_refuses_an_unknown_measures_format(tmp_path, oblique_stack, capsys):
    source = write(oblique_stack, tmp_path / "stack.nrrd")
    with pytest.raises(SystemExit):
        main(["segment", str(source), "-o", str(tmp_path / "l.nii.gz"), "--measures", str(tmp_path / "m.txt")])
    assert "--measures must end in .csv or .json" in capsys.readouterr().err


@pytest.mark.data
def test_bundled_model_finds_the_lv_on_a_held_out_acdc_patient(shared_data):
    from calid.evaluation.datasets import find_cases, load_case
    from calid.evaluation.metrics import dice
    from calid.models.search import find_model

    try:
        find_model(DEFAULT_MODEL)
    except ModelError:
        pytest.skip(f"{DEFAULT_MODEL} is not installed")
    cases = [c for c in find_cases(shared_data / "acdc", "test") if c.name == "patient014_ED"]
    if not cases:
        pytest.skip("ACDC test patient014 not present")
    loaded = load_case(cases[0])
    labels = segment(loaded.volume, device="cpu").labels
    assert dice(labels.array, loaded.labels, LV) > 0.8
