"""Inference layout: channels-last convolution weights on the CPU change speed, not results."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.models.accel import for_device  # noqa: E402
from calid.models.denoiser import SliceDenoiser  # noqa: E402
from calid.models.vae import SliceAutoencoder  # noqa: E402

from tiny_models import TINY_DENOISER, TINY_VAE  # noqa: E402


def test_cpu_models_get_channels_last_convolutions_and_compute_the_same():
    torch.manual_seed(0)
    vae, denoiser = SliceAutoencoder(**TINY_VAE).eval(), SliceDenoiser(**TINY_DENOISER).eval()
    with torch.no_grad():
        for parameter in denoiser.parameters():  # non-zero residual branches, so every layer matters
            parameter.normal_(0.0, 0.1)
    fast_vae, fast_denoiser = for_device(copy.deepcopy(vae), "cpu"), for_device(copy.deepcopy(denoiser), "cpu")
    convs = [m for m in (*fast_vae.modules(), *fast_denoiser.modules()) if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
                         for m in convs if m.weight.shape[1] > 1 and m.weight.shape[-1] > 1)
    images = torch.rand(3, 1, 20, 24)
    context, noisy = torch.randn(3, 4, 2, 5, 6), torch.randn(3, 2, 5, 6)
    args = (torch.full((3,), 4), context, torch.full((3,), 0.5), torch.full((3,), 10.0))
    with torch.no_grad():
        torch.testing.assert_close(fast_vae.encode(images), vae.encode(images), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(fast_vae.decode(vae.encode(images)), vae.decode(vae.encode(images)), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(fast_denoiser(noisy, *args), denoiser(noisy, *args), atol=1e-5, rtol=1e-4)
