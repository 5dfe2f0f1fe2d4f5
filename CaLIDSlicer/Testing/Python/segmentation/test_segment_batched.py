"""The batched, rewritten segmentation path gives what the plain per-frame, per-flip path gave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calid.io.volume import Volume
from calid.segmentation.inference import (
    FLIPS,
    WINDOW_OVERLAP,
    _Runner,
    from_model_grid,
    keep_largest_components,
    normalised_frame,
    segment_array,
    to_model_grid,
)


def _reference_probabilities(network, slices: np.ndarray, flips) -> np.ndarray:
    """The straightforward path: the original layers, one mirror image at a time."""
    from monai.inferers import sliding_window_inference

    images = torch.from_numpy(np.ascontiguousarray(slices, np.float32))[:, None]
    total = 0
    with torch.inference_mode():
        for axes in flips:
            flipped = images.flip(axes) if axes else images
            logits = sliding_window_inference(flipped, (network.window,) * 2, 32, network, overlap=WINDOW_OVERLAP,
                                              mode="gaussian")
            probabilities = torch.softmax(logits, dim=1)
            total = total + (probabilities.flip(axes) if axes else probabilities)
    return (total / len(flips)).permute(0, 2, 3, 1).numpy()


@pytest.fixture
def network():
    from calid.models.segmenter import SliceSegmenter

    torch.manual_seed(5)
    return SliceSegmenter(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, pixel_size=1.2, window=16).eval()


@pytest.fixture
def cine():
    yy, xx = np.mgrid[:40, :36]
    rng = np.random.default_rng(2)
    frames = [[1000 * np.exp(-((yy - 20 - t) ** 2 + (xx - 18 + z) ** 2) / 60.0) + rng.normal(0, 30, yy.shape)
               for z in range(5)] for t in range(3)]
    return Volume(np.asarray(frames, np.float32), spacing=(1.4, 1.3, 8.0), frame_times=(0.0, 30.0, 60.0))


@pytest.mark.parametrize("flips", [4, 2, 1])
def test_batched_probabilities_match_the_plain_path(network, cine, flips):
    slices = to_model_grid(normalised_frame(cine.array[1], cine.acquired), (1.4, 1.3), network.pixel_size)
    expected = _reference_probabilities(network, slices, FLIPS[:flips])
    got = _Runner(network, "cpu", flips)(slices)
    np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize("flips", [4, 1])
def test_cine_labels_match_the_plain_frame_by_frame_path(network, cine, flips):
    got = segment_array(cine, network, device="cpu", flips=flips)
    for t, frame in enumerate(cine.array):
        slices = to_model_grid(normalised_frame(frame, cine.acquired), (1.4, 1.3), network.pixel_size)
        probabilities = from_model_grid(_reference_probabilities(network, slices, FLIPS[:flips]), network.pixel_size,
                                        cine.slice_shape, (1.4, 1.3))
        top2 = np.sort(probabilities, axis=-1)[..., -2:]
        decided = top2[..., 1] - top2[..., 0] > 1e-4  # where float rounding cannot swap the winner
        raw = np.argmax(probabilities, axis=-1).astype(np.uint8)
        np.testing.assert_array_equal(segment_array(cine.frame(t), network, keep_largest=False, flips=flips)[decided], raw[decided])
        if decided.all():
            np.testing.assert_array_equal(got[t], keep_largest_components(raw))
    assert got.shape == cine.array.shape and got.dtype == np.uint8
