"""CaLID networks: shapes, padding, conditioning, argument checks, save/load round trips."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.models.denoiser import SliceDenoiser  # noqa: E402
from calid.models.vae import SliceAutoencoder  # noqa: E402
from calid.models.format import ModelConfig, load_model, save_model  # noqa: E402

from tiny_models import TINY_DENOISER, TINY_VAE  # noqa: E402


def tiny_denoiser_inputs(batch: int = 3, size: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    noisy = torch.randn(batch, 2, size, size, generator=generator)
    context = torch.randn(batch, 4, 2, size, size, generator=generator)
    return noisy, torch.tensor([1, 5, 9][:batch]), context, torch.tensor([0.5, 0.25, 0.75][:batch]), torch.full((batch,), 20.0)


@pytest.mark.parametrize("size", [(16, 16), (15, 17), (9, 4)])
def test_autoencoder_pads_odd_sizes_and_crops_back(size):
    torch.manual_seed(0)
    model = SliceAutoencoder(**TINY_VAE).eval()
    images = torch.rand(2, 1, *size)
    latents = model.encode(images)
    assert latents.shape == (2, 2, -(-size[0] // 2), -(-size[1] // 2))
    assert model.decode(latents, size).shape == images.shape
    recon, mean, sigma = model(images)
    assert recon.shape == images.shape and sigma.min() > 0


def test_autoencoder_latent_scale_scales_latents():
    torch.manual_seed(0)
    model = SliceAutoencoder(**TINY_VAE).eval()
    images = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(model.encode(images), model.net.encode(images)[0] * 0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": [8]}, "at least 2 levels"),
    ({"channels": [8, 12]}, "multiple of norm_num_groups"),
    ({"latent_channels": 0}, "latent_channels"),
    ({"latent_scale": 0.0}, "latent_scale"),
])
def test_autoencoder_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SliceAutoencoder(**{**TINY_VAE, **kwargs})


def test_denoiser_output_shape():
    model = SliceDenoiser(**TINY_DENOISER).eval()
    noisy, steps, context, fraction, gap = tiny_denoiser_inputs()
    assert model(noisy, steps, context, fraction, gap).shape == noisy.shape


def test_denoiser_output_depends_on_neighbours_fraction_and_gap():
    torch.manual_seed(0)
    model = SliceDenoiser(**TINY_DENOISER).eval()
    with torch.no_grad():  # MONAI zero-initialises residual branches; stand in for trained weights
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    noisy, steps, context, fraction, gap = tiny_denoiser_inputs()
    with torch.no_grad():
        reference = model(noisy, steps, context, fraction, gap)
        other_neighbours = model(noisy, steps, context + 1.0, fraction, gap)
        other_fraction = model(noisy, steps, context, 1 - fraction, gap)
        other_gap = model(noisy, steps, context, fraction, gap * 2)
    for changed in (other_neighbours, other_fraction, other_gap):
        assert (changed - reference).abs().max() > 1e-4


@pytest.mark.parametrize("kwargs, message", [
    ({"prediction_type": "noise"}, "prediction_type"),
    ({"neighbours": 0}, "neighbours"),
    ({"channels": [8, 12]}, "multiple of norm_num_groups"),
])
def test_denoiser_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SliceDenoiser(**{**TINY_DENOISER, **kwargs})


def test_denoiser_rejects_context_of_wrong_shape():
    model = SliceDenoiser(**TINY_DENOISER)
    noisy, steps, context, fraction, gap = tiny_denoiser_inputs()
    with pytest.raises(ValueError, match="context must have shape"):
        model(noisy, steps, context[:, :2], fraction, gap)


def test_scheduler_matches_training_settings():
    model = SliceDenoiser(**{**TINY_DENOISER, "prediction_type": "v_prediction"})
    scheduler = model.make_scheduler()
    assert scheduler.num_train_timesteps == 10 and scheduler.prediction_type == "v_prediction"


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    vae = SliceAutoencoder(**TINY_VAE).eval()
    denoiser = SliceDenoiser(**TINY_DENOISER).eval()
    save_model(vae, ModelConfig("tiny-vae", "1.0.0", "vae", "calid-vae", TINY_VAE), tmp_path / "vae", "# tiny vae")
    save_model(denoiser, ModelConfig("tiny-den", "1.0.0", "denoiser", "calid-denoiser", TINY_DENOISER), tmp_path / "den", "# tiny")
    vae2, _ = load_model(tmp_path / "vae")
    denoiser2, _ = load_model(tmp_path / "den")
    images = torch.rand(2, 1, 13, 16)
    inputs = tiny_denoiser_inputs()
    with torch.no_grad():
        torch.testing.assert_close(vae2.encode(images), vae.encode(images), rtol=0, atol=0)
        latents = vae.encode(images)
        torch.testing.assert_close(vae2.decode(latents, (13, 16)), vae.decode(latents, (13, 16)), rtol=0, atol=0)
        torch.testing.assert_close(denoiser2(*inputs), denoiser(*inputs), rtol=0, atol=0)
