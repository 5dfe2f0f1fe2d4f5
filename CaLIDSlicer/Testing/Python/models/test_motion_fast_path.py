"""The motion guide's inference path (shared pair flows, one grid_sample per pair, NHWC
convolutions, scaled-then-upsampled offsets) gives the plain per-target formula's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calid.models.motion import MotionNet, interpolate, target_flows, warp

TINY = {"stem_channels": 2, "flow_width": 4, "refine_width": 2}


def plain_targets(model: MotionNet, prev, next_, flows, a) -> torch.Tensor:
    """The guide written out per target row (prev, next_, flows repeated), full-resolution flows in pixels."""
    d, a4 = model.downscale, a.view(-1, 1, 1, 1)
    f_t0, f_t1 = target_flows(flows[:, :2], flows[:, 2:], a4)
    small_prev, small_next = F.avg_pool2d(prev, d), F.avg_pool2d(next_, d)
    out = model.refine_net(torch.cat([small_prev, small_next, warp(small_prev, f_t0), warp(small_next, f_t1),
                                      f_t0, f_t1, a4.expand_as(small_prev)], 1))
    f_t0, f_t1 = f_t0 + a4 * out[:, 0:2], f_t1 + (1 - a4) * out[:, 2:4]
    visible = torch.sigmoid(out[:, 4:5])
    mask = (1 - a4) * visible / ((1 - a4) * visible + a4 * (1 - visible)).clamp_min(1e-6)
    full = F.interpolate(torch.cat([f_t0, f_t1, mask], 1), size=prev.shape[-2:], mode="bilinear", align_corners=False)
    mask = full[:, 4:5]
    return mask * warp(prev, d * full[:, 0:2]) + (1 - mask) * warp(next_, d * full[:, 2:4])


@pytest.mark.parametrize("downscale", [4, 8])
def test_targets_of_several_fractions_per_pair_match_the_plain_formula(downscale):
    torch.manual_seed(0)
    model = MotionNet(**TINY, downscale=downscale).eval()
    pairs, size = 3, (128, 256)
    prev, next_ = torch.rand(pairs, 1, *size), torch.rand(pairs, 1, *size)
    flows = 3 * torch.randn(pairs, 4, size[0] // downscale, size[1] // downscale)  # a few pixels of motion
    fractions = torch.tensor([0.0, 0.25, 0.6, 1.0])
    with torch.no_grad():
        fast = model.targets(prev, next_, flows, fractions.expand(pairs, 4))["image"]
        rows = torch.arange(pairs).repeat_interleave(4)
        plain = plain_targets(model, prev[rows], next_[rows], flows[rows], fractions.repeat(pairs))
    assert fast.shape == (pairs * 4, 1, *size)
    torch.testing.assert_close(fast, plain, atol=2e-5, rtol=1e-5)
    # a = 0 is prev, a = 1 is next (up to grid_sample's rounding of the identity grid)
    torch.testing.assert_close(fast[0::4], prev, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast[3::4], next_, atol=1e-4, rtol=0)


def test_one_fraction_per_pair_is_the_training_path_and_keeps_gradients():
    torch.manual_seed(1)
    model = MotionNet(**TINY)
    prev, next_ = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)
    a = torch.tensor([0.3, 0.7])
    flows = model.pair_flows(prev, next_)
    image = model.targets(prev, next_, flows, a)["image"]
    torch.testing.assert_close(image, plain_targets(model, prev, next_, flows, a), atol=2e-5, rtol=1e-5)
    image.mean().backward()
    assert all(p.grad is not None for p in model.refine_net.parameters())
    assert model.stem[0].conv.weight.grad.abs().sum() > 0


def test_interpolate_gives_each_fraction_the_same_slice_alone_or_together():
    torch.manual_seed(2)
    model = MotionNet(**TINY).eval()
    rng = np.random.default_rng(0)
    prev, next_ = rng.random((3, 40, 70)).astype(np.float32), rng.random((3, 40, 70)).astype(np.float32)
    together = interpolate(model, prev, next_, [0.25, 0.5, 0.75], batch_pairs=2)
    for index, a in enumerate([0.25, 0.5, 0.75]):
        np.testing.assert_allclose(interpolate(model, prev, next_, [a])[:, 0], together[:, index], atol=1e-5)
