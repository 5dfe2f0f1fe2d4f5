"""The segmentation network and its training helpers, in tiny configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calid.models.segmenter import N_CLASSES, SliceSegmenter
from calid.models.format import ModelConfig, load_model, save_model

TINY = {"channels": [4, 8, 8], "strides": [2, 2], "num_res_units": 1, "pixel_size": 2.0}


def test_output_has_one_logit_per_class_and_pixel():
    network = SliceSegmenter(**TINY).eval()
    assert N_CLASSES == 4
    assert network(torch.zeros(3, 1, 16, 24)).shape == (3, 4, 16, 24)
    assert network.size_multiple == 4 and network.pixel_size == 2.0 and network.window == 128


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": [8]}, "at least 2 levels"),
        ({"channels": [4, 8], "strides": [2, 2]}, "strides must have"),
        ({"channels": [4, 8], "strides": [0]}, "strides must be positive"),
        ({"dropout": 1.0}, "dropout must be"),
        ({"pixel_size": 0}, "pixel_size must be"),
        ({"window": 100}, "window must be a positive multiple of 8"),
    ],
)
def test_bad_settings_are_refused_before_building(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SliceSegmenter(**kwargs)


def test_inputs_of_the_wrong_shape_are_refused():
    network = SliceSegmenter(**TINY)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        network(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="multiple of 4"):
        network(torch.zeros(1, 1, 18, 16))


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    network = SliceSegmenter(**TINY).eval()
    config = ModelConfig("tiny-seg", "0.0.0", "segmenter", "calid-segmenter", kwargs=TINY)
    save_model(network, config, tmp_path / "tiny-seg", "# tiny test segmenter")
    loaded, loaded_config = load_model(tmp_path / "tiny-seg")
    images = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loaded(images), network(images), rtol=0, atol=0)
    assert loaded_config.kwargs == TINY and loaded.pixel_size == 2.0


def test_training_batches_keep_labels_integral_and_aligned():
    from calid.train.segmenter import draw_batch

    image = np.zeros((3, 40, 50), np.float16)
    labels = np.zeros((3, 40, 50), np.uint8)
    image[:, 10:20, 10:30] = 1.0
    labels[:, 10:20, 10:30] = 3  # the bright box is 'LV'
    images, targets = draw_batch([(image, labels)], 6, 32, torch.Generator().manual_seed(0))
    assert images.shape == targets.shape == (6, 1, 32, 32)
    assert set(torch.unique(targets).tolist()) <= {0.0, 3.0}
    lv = targets == 3
    assert lv.any() and images[lv].mean() > 0.5 > images[~lv].mean()


def test_crops_mostly_contain_the_heart():
    from calid.train.segmenter import crop_pair

    labels = np.zeros((200, 200), np.uint8)
    labels[150:170, 20:40] = 2
    generator = torch.Generator().manual_seed(1)
    hits = sum(bool((crop_pair(labels.astype(np.float16), labels, 64, generator)[1] > 0).any()) for _ in range(40))
    assert hits >= 25  # about 80% are centred on the labels, the rest fall anywhere
