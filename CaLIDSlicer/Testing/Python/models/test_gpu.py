"""The GPU path agrees with the CPU: CUDA vs CPU in float32, and bf16 autocast within 1e-2 relative.

The ``gpu``-marked tests need CUDA (skipped without it) and are run by
``benchmarks/device/run.sh`` on a lent machine. The unmarked ones check the same bf16 bound
with CPU autocast here, so the tolerance the GPU tests use is known to be reachable.
Inputs are real-looking (phantom slices through the bundled autoencoder), not noise.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

#: float32 on CUDA: cuDNN may use TF32 in convolutions (10-bit mantissa), so not bit-equal.
FP32_RTOL = 5e-3
#: bf16 autocast against float32 (the issue's bar).
BF16_RTOL = 1e-2

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/device/run.sh)")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| over the whole tensor, in float64 on the CPU."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.fixture(scope="module")
def models():
    from calid.methods.calid_fill import _model_dir
    from calid.methods.calid_settings import DEFAULT_MODEL
    from calid.models.format import load_model

    denoiser_dir = _model_dir(DEFAULT_MODEL)
    denoiser, config = load_model(denoiser_dir, "cpu")
    autoencoder, _ = load_model(denoiser_dir.parent / config.extra["autoencoder"], "cpu")
    return denoiser, autoencoder


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """(6, 1, 64, 64) normalised phantom slices."""
    from calid.models.preprocess import intensity_scale, normalise
    from calid.phantom.generator import make_phantom

    array = make_phantom(n_slices=6, n_frames=1, as_3d=True, size=(64, 64)).image.array
    return torch.from_numpy(normalise(array, intensity_scale(array)))[:, None]


def autocast(device: str, bf16: bool):
    return torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def vae_round_trip(autoencoder, images: torch.Tensor, device: str, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from calid.models.accel import for_device

    net = for_device(autoencoder.to(device), device)
    with torch.no_grad(), autocast(device, bf16):
        latents = net.encode(images.to(device))
        decoded = net.decode(latents, images.shape[-2:])
    return latents.float().cpu(), decoded.float().cpu()


def denoiser_step(denoiser, latents: torch.Tensor, device: str, bf16: bool) -> torch.Tensor:
    """One x0 prediction at t = 999 for the middle slice of each window of 4 neighbours (a sampler's first step)."""
    from calid.models.accel import for_device

    net = for_device(denoiser.to(device), device)
    context = torch.stack([latents[i : i + 4] for i in range(len(latents) - 3)]).to(device)
    noisy = torch.randn(context.shape[0], *latents.shape[1:], generator=torch.Generator().manual_seed(0)).to(device)
    steps = torch.full((context.shape[0],), 999, device=device, dtype=torch.long)
    fraction = torch.full((context.shape[0],), 0.5, device=device)
    gap = torch.full((context.shape[0],), 10.0, device=device)
    with torch.no_grad(), autocast(device, bf16):
        return net(noisy, steps, context, fraction, gap).float().cpu()


def test_bf16_autocast_within_bound_on_cpu(models, images):
    """The bound the GPU tests hold bf16 to, checked with the CPU's bf16 autocast (runs everywhere)."""
    denoiser, autoencoder = models
    latents, decoded = vae_round_trip(autoencoder, images, "cpu", False)
    latents16, decoded16 = vae_round_trip(autoencoder, images, "cpu", True)
    assert relative(latents16, latents) < BF16_RTOL
    assert relative(decoded16, decoded) < BF16_RTOL
    assert relative(denoiser_step(denoiser, latents, "cpu", True), denoiser_step(denoiser, latents, "cpu", False)) < BF16_RTOL


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_autoencoder_cuda_matches_cpu(models, images, bf16):
    _, autoencoder = models
    latents, decoded = vae_round_trip(autoencoder, images, "cpu", False)
    cuda_latents, cuda_decoded = vae_round_trip(autoencoder, images, "cuda", bf16)
    tolerance = BF16_RTOL if bf16 else FP32_RTOL
    assert relative(cuda_latents, latents) < tolerance
    assert relative(cuda_decoded, decoded) < tolerance


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_denoiser_step_cuda_matches_cpu(models, images, bf16):
    denoiser, autoencoder = models
    latents, _ = vae_round_trip(autoencoder, images, "cpu", False)
    expected = denoiser_step(denoiser, latents, "cpu", False)
    assert relative(denoiser_step(denoiser, latents, "cuda", bf16), expected) < (BF16_RTOL if bf16 else FP32_RTOL)


@pytest.mark.gpu
@needs_cuda
def test_reconstruct_cuda_matches_cpu():
    """The whole calid method (bf16 autocast and channels-last on CUDA) against the CPU, unguided (no SimpleITK)."""
    import calid
    from calid.phantom.generator import make_phantom

    sparse = make_phantom(n_slices=5, n_frames=1, as_3d=True, size=(64, 64)).image
    cpu = calid.reconstruct(sparse, factor=2, method="calid", device="cpu", guide="none", progress="none",
                            precision="float32").volume
    gpu = calid.reconstruct(sparse, factor=2, method="calid", device="cuda", guide="none", progress="none").volume
    made = list(cpu.synthesized)
    assert made == list(gpu.synthesized) and made
    assert np.array_equal(cpu.array[::2], gpu.array[::2])  # acquired slices pass through bit-exact
    assert relative(torch.from_numpy(gpu.array[made]), torch.from_numpy(cpu.array[made])) < BF16_RTOL


@pytest.mark.gpu
@needs_cuda
def test_training_step_on_cuda_lowers_loss(tmp_path):
    """The training loop under bf16 autocast on CUDA: finite losses that fall on one repeated batch."""
    from calid.models.vae import SliceAutoencoder
    from calid.train.distributed import DistributedContext, wrap
    from calid.train.loop import LoopSettings, train
    from calid.train.vae import VaeLossWeights, vae_loss

    context = DistributedContext(0, 1, torch.device("cuda"))
    torch.manual_seed(0)
    model = wrap(SliceAutoencoder(channels=[32, 64, 64], latent_channels=4, num_res_blocks=1, norm_num_groups=16), context)
    batch = torch.rand(8, 1, 64, 64)
    losses = train(model, lambda _: batch, lambda net, b: vae_loss(net, b.to("cuda"), VaeLossWeights()),
                   LoopSettings(steps=30, warmup=5, checkpoint_every=30, log_every=30), context, tmp_path, seed=0)
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
