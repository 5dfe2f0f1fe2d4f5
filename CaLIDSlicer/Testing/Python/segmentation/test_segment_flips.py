"""How many mirror images the segmenter averages: one by default, 2 or 4 on request, same labels per setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calid.cli import main
from calid.errors import InputError
from calid.io.read_write import read, write
from calid.io.volume import Volume
from calid.segmentation import inference
from calid.segmentation.inference import DEFAULT_FLIPS, FLIP_COUNTS, flip_count, segment, segment_array


@pytest.fixture
def network():
    from calid.models.segmenter import SliceSegmenter

    torch.manual_seed(3)
    return SliceSegmenter(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, pixel_size=1.2, window=16).eval()


@pytest.fixture
def stack() -> Volume:
    yy, xx = np.mgrid[:40, :36]
    rng = np.random.default_rng(7)
    slices = [1000 * np.exp(-((yy - 20) ** 2 + (xx - 18 + z) ** 2) / 60.0) + rng.normal(0, 30, yy.shape) for z in range(4)]
    return Volume(np.asarray(slices, np.float32), spacing=(1.4, 1.3, 8.0))


def test_flip_count_resolves_the_new_and_the_old_switch():
    assert DEFAULT_FLIPS == 1 and DEFAULT_FLIPS in FLIP_COUNTS
    assert flip_count() == DEFAULT_FLIPS
    assert flip_count(average_flips=True) == 4 and flip_count(average_flips=False) == 1
    assert [flip_count(n) for n in FLIP_COUNTS] == list(FLIP_COUNTS)
    for bad in (0, 3, 8, True, "4"):
        with pytest.raises(InputError, match="flips must be one of 1, 2, 4"):
            flip_count(bad)
    with pytest.raises(InputError, match="contradicts"):
        flip_count(4, average_flips=False)


def test_labels_are_identical_for_the_same_setting_however_it_is_named(network, stack):
    default = segment_array(stack, network)
    np.testing.assert_array_equal(default, segment_array(stack, network, flips=DEFAULT_FLIPS))
    np.testing.assert_array_equal(segment_array(stack, network, flips=1), segment_array(stack, network, average_flips=False))
    four = segment_array(stack, network, flips=4)
    np.testing.assert_array_equal(four, segment_array(stack, network, average_flips=True))
    probabilities = {n: inference._Runner(network, "cpu", n)(np.ones((1, 24, 24), np.float32)) for n in FLIP_COUNTS}
    assert not np.allclose(probabilities[1], probabilities[4])  # the setting does reach the network


def test_a_bad_flip_count_is_refused_before_the_model_loads(monkeypatch, stack):
    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(inference, "load_segmenter", must_not_load)
    with pytest.raises(InputError, match="flips must be one of"):
        segment(stack, device="cpu", flips=3)


def test_cli_flips_reach_the_segmenter(monkeypatch, tmp_path, stack, capsys):
    seen = []

    def fake_segment(volume, **kwargs):
        seen.append(kwargs["flips"])
        return inference.SegmentationResult(volume.replace(array=np.zeros(volume.array.shape, np.uint8)), "fake 1.0.0", 0.0)

    monkeypatch.setattr(inference, "segment", fake_segment)
    source = write(stack, tmp_path / "stack.nii.gz")
    for extra in ([], ["--flips", "4"], ["--flips", "2"], ["--no-flips"]):
        assert main(["segment", str(source), "-o", str(tmp_path / "labels.nii.gz"), "--progress", "none", *extra]) == 0
    assert seen == [None, 4, 2, 1]  # None: segment() applies DEFAULT_FLIPS
    assert read(tmp_path / "labels.nii.gz").array.shape == stack.array.shape
    with pytest.raises(SystemExit):
        main(["segment", str(source), "-o", str(tmp_path / "x.nii.gz"), "--flips", "3"])
    assert "invalid choice" in capsys.readouterr().err


def test_evaluate_keeps_segmenting_with_four_mirror_images(monkeypatch, stack):
    """Dice/HD95 of reconstructions stay comparable with every evaluation reported before the default changed."""
    from calid.evaluation.evaluate import EVALUATION_FLIPS, Segmenter

    seen = []
    monkeypatch.setattr(inference, "load_segmenter", lambda device="cpu": (object(), "fake 1.0.0"))
    monkeypatch.setattr(inference, "segment_array", lambda volume, network, **kwargs: seen.append(kwargs["flips"]))
    monkeypatch.setattr("calid.models.identity.identity_of", lambda network: None)
    Segmenter("cpu")(stack)
    assert seen == [EVALUATION_FLIPS] == [4]
