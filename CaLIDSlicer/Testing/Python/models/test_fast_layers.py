"""The inference rewrites compute the same function as the layers they replace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from calid.models.fast_layers import InstanceNormAsGroupNorm, SubPixelTransposedConv, fast_inference_copy


@pytest.mark.parametrize("shape", [(3, 5, 8, 8), (2, 5, 7, 11), (1, 5, 1, 1)])
def test_sub_pixel_conv_equals_the_transposed_conv(shape):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(5, 3, 3, stride=2, padding=1, output_padding=1)
    x = torch.randn(shape)
    with torch.no_grad():
        expected, got = layer(x), SubPixelTransposedConv(layer)(x)
    assert got.shape == expected.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_group_norm_equals_instance_norm():
    x = torch.randn(4, 6, 9, 7) * 3 + 2
    torch.testing.assert_close(InstanceNormAsGroupNorm(6, 1e-5)(x), nn.InstanceNorm2d(6)(x), atol=1e-5, rtol=1e-5)


def test_only_equivalent_layers_are_rewritten_and_the_original_is_kept():
    other = nn.ConvTranspose2d(4, 4, 2, stride=2)  # not the 3x3 / stride 2 / padding 1 form
    network = nn.Sequential(nn.ConvTranspose2d(4, 4, 3, 2, 1, 1), nn.InstanceNorm2d(4), nn.InstanceNorm2d(4, affine=True),
                            other).train()
    fast = fast_inference_copy(network)
    assert [type(layer) for layer in fast] == [SubPixelTransposedConv, InstanceNormAsGroupNorm, nn.InstanceNorm2d,
                                               nn.ConvTranspose2d]
    assert not fast.training and network.training and isinstance(network[0], nn.ConvTranspose2d)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), network.eval()(x), atol=1e-5, rtol=1e-5)


def test_the_segmenter_keeps_its_outputs():
    from calid.models.segmenter import SliceSegmenter

    torch.manual_seed(1)
    network = SliceSegmenter(channels=(4, 8, 16), strides=(2, 2), num_res_units=1, window=16).eval()
    fast = fast_inference_copy(network)
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.InstanceNorm2d)) for m in fast.modules())
    assert (fast.pixel_size, fast.window) == (network.pixel_size, network.window)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), network(x), atol=1e-5, rtol=1e-4)
