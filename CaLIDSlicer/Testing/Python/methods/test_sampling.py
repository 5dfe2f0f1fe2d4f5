"""DDIM sampling and the calid fill bridge, with tiny untrained models saved to a temp folder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.methods.calid_fill import fill  # noqa: E402
from calid.models.denoiser import SliceDenoiser  # noqa: E402
from calid.models.vae import SliceAutoencoder  # noqa: E402
from calid.progress import Progress  # noqa: E402
from calid.methods.sampling import (  # noqa: E402
    SamplerSettings, fill_latents, gap_requests, neighbour_indices, sample_latents, trailing_schedule,
)
from calid.models.format import ModelConfig, save_model  # noqa: E402

from tiny_models import TINY_DENOISER, TINY_VAE  # noqa: E402


@pytest.fixture(scope="module")
def denoiser():
    torch.manual_seed(0)
    model = SliceDenoiser(**TINY_DENOISER).eval()
    with torch.no_grad():  # non-zero residual branches, so the output depends on every input
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, denoiser):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(1)
    save_model(SliceAutoencoder(**TINY_VAE), ModelConfig("tiny-vae", "1.0.0", "vae", "calid-vae", TINY_VAE), root / "tiny-vae", "# t")
    config = ModelConfig("tiny-den", "1.0.0", "denoiser", "calid-denoiser", TINY_DENOISER, {"autoencoder": "tiny-vae"})
    return save_model(denoiser, config, root / "tiny-den", "# tiny")


def draw(denoiser, seed, settings, count=3):
    context = torch.randn(count, 4, 2, 6, 6, generator=torch.Generator().manual_seed(5))
    fraction, gap = torch.full((count,), 0.5), torch.full((count,), 20.0)
    return sample_latents(denoiser, context, fraction, gap, settings, torch.Generator().manual_seed(seed))


def test_sampling_is_deterministic_for_a_seed_and_differs_between_seeds(denoiser):
    settings = SamplerSettings(steps=3, temperature=1.0, chunk=2)
    first, again, other = draw(denoiser, 0, settings), draw(denoiser, 0, settings), draw(denoiser, 1, settings)
    assert first.shape == (1, 3, 2, 6, 6)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-3


def test_chunking_does_not_change_samples(denoiser):
    whole = draw(denoiser, 3, SamplerSettings(steps=2, samples=2, chunk=32, temperature=1.0))
    pieces = draw(denoiser, 3, SamplerSettings(steps=2, samples=2, chunk=1, temperature=1.0))
    torch.testing.assert_close(whole, pieces)


def test_neighbours_are_repeated_at_the_stack_ends():
    assert neighbour_indices(0, 4, 2) == [0, 0, 1, 2]
    assert neighbour_indices(2, 4, 2) == [1, 2, 3, 3]
    contexts, fractions, targets = gap_requests(3, 3, 1)
    assert contexts == [[0, 1], [0, 1], [1, 2], [1, 2]]
    assert fractions == [1 / 3, 2 / 3, 1 / 3, 2 / 3] and targets == [1, 2, 4, 5]


@pytest.mark.parametrize("order", ["parallel", "autoregressive"])
def test_fill_latents_orders_give_one_latent_per_missing_slice(denoiser, order):
    acquired = torch.randn(2, 4, 2, 6, 6)
    settings = SamplerSettings(steps=2, samples=2, order=order)
    latents, targets = fill_latents(denoiser, acquired, 3, 10.0, settings, torch.Generator().manual_seed(0))
    assert latents.shape == (2, 2, 6, 2, 6, 6) and targets == [1, 2, 4, 5, 7, 8]
    assert torch.isfinite(latents).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps"), ({"samples": 1.5}, "samples"), ({"order": "random"}, "order"), ({"eta": -1.0}, "eta"),
])
def test_sampler_settings_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplerSettings(**kwargs)


@pytest.mark.parametrize("decoding", ["residual", "direct"])
def test_fill_keeps_acquired_slices_and_names_its_stages(model_dir, decoding):
    array = np.random.default_rng(0).uniform(0, 500, size=(2, 3, 10, 13)).astype(np.float32)
    progress = Progress("none")
    dense, std = fill(array, 2, (1.5, 1.5, 10.0), progress, steps=2, samples=1, seed=0, device="cpu", model=model_dir,
                      decoding=decoding)
    assert dense.shape == (2, 5, 10, 13) and dense.dtype == np.float32 and std is None
    np.testing.assert_array_equal(dense[:, ::2], array)
    assert np.isfinite(dense).all() and dense.min() >= 0
    assert {"encode", "sample", "decode"} <= set(progress.stage_seconds)


def test_fill_with_samples_returns_positive_std_on_missing_slices_only(model_dir):
    array = np.random.default_rng(1).uniform(0, 1, size=(1, 3, 8, 8)).astype(np.float32)
    kwargs = {"steps": 2, "seed": 4, "device": "cpu", "model": model_dir}  # several samples: temperature 1 by default
    dense, std = fill(array, 3, (1.0, 1.0, 8.0), Progress("none"), samples=3, **kwargs)
    assert std.shape == dense.shape == (1, 7, 8, 8)
    assert np.all(std[:, ::3] == 0) and std[:, 1].mean() > 0
    again, _ = fill(array, 3, (1.0, 1.0, 8.0), Progress("none"), samples=3, **kwargs)
    np.testing.assert_array_equal(dense, again)


def test_fill_refuses_a_model_that_is_not_a_denoiser(model_dir):
    from calid.errors import ModelError

    with pytest.raises(ModelError, match="needs a denoiser"):
        fill(np.ones((1, 2, 8, 8), np.float32), 2, (1, 1, 1), Progress("none"), device="cpu", model=model_dir.parent / "tiny-vae")


def test_fill_refuses_a_denoiser_whose_autoencoder_makes_other_latents(tmp_path, denoiser):
    from calid.errors import ModelError

    wide = {**TINY_VAE, "latent_channels": 3}
    save_model(SliceAutoencoder(**wide), ModelConfig("wide-vae", "1.0.0", "vae", "calid-vae", wide), tmp_path / "wide-vae", "# t")
    config = ModelConfig("tiny-den", "1.0.0", "denoiser", "calid-denoiser", TINY_DENOISER, {"autoencoder": "wide-vae"})
    mismatched = save_model(denoiser, config, tmp_path / "tiny-den", "# tiny")
    with pytest.raises(ModelError, match="reads 2 latent channels but its autoencoder wide-vae makes 3"):
        fill(np.ones((1, 2, 8, 8), np.float32), 2, (1, 1, 1), Progress("none"), device="cpu", model=mismatched)


def test_linear_blends_weight_the_nearest_acquired_neighbours():
    """Residual decoding adds decode(z) - decode(z_lin) to I_lin: both blends must use the same neighbours."""
    import calid.methods.calid_settings as calid_settings
    from calid.methods.calid_codec import linear_blends

    latents = torch.randn(1, 3, 2, 4, 4)
    images = np.random.default_rng(0).uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    blend_latents, blend_images = linear_blends(latents, images, 1.0, 2, 2)
    torch.testing.assert_close(blend_images[0, 0], torch.from_numpy(images[0, 0] + images[0, 1]) / 2)
    torch.testing.assert_close(blend_latents[0, 1], (latents[0, 1] + latents[0, 2]) / 2)
    only_last, _ = linear_blends(latents, images, 1.0, 2, 2, gaps=range(1, 2))
    torch.testing.assert_close(only_last[0, 0], blend_latents[0, 1])
    assert calid_settings.DEFAULT_DECODING in calid_settings.DECODINGS


@pytest.mark.parametrize("steps, expected", [(1, [9]), (2, [9, 4]), (5, [9, 7, 5, 3, 1])])
def test_timesteps_start_from_pure_noise_and_match_the_step_size(denoiser, steps, expected):
    scheduler = trailing_schedule(denoiser.make_scheduler(), steps)
    assert scheduler.timesteps.tolist() == expected
    ratio = scheduler.num_train_timesteps // steps
    assert all(a - b == ratio for a, b in zip(expected, expected[1:]))


class TrustingDenoiser(torch.nn.Module):
    """Predicts the clean latent as noisy / sqrt(alpha_bar_t): right whenever the start held no noise.

    With temperature 0 a guided start is sqrt(alpha_bar) * guide, so the sampler must return
    each guide in its own slot: this checks the guide's ordering in every sampler path.
    """

    neighbours = 2
    prediction_type = "sample"

    def __init__(self, timesteps: int = 1000) -> None:
        super().__init__()
        self.base = SliceDenoiser(**{**TINY_DENOISER, "num_train_timesteps": timesteps})
        self.alphas = self.base.make_scheduler().alphas_cumprod
        self.calls: list[tuple[int, torch.Tensor]] = []

    def make_scheduler(self):
        return self.base.make_scheduler()

    def forward(self, noisy, timesteps, context, fraction, gap_mm, frames=None):
        t = int(timesteps[0])
        self.calls.append((t, noisy.clone()))
        return noisy / self.alphas[t].sqrt()


@pytest.mark.parametrize("strength, steps, expected", [
    (0.5, 1, [499]), (0.5, 2, [499, 249]), (0.5, 4, [499, 374, 249, 124]), (1.0, 3, [999, 666, 333]),
])
def test_guided_schedule_starts_part_way_and_steps_match_the_scheduler(strength, steps, expected):
    scheduler = trailing_schedule(TrustingDenoiser().make_scheduler(), steps, strength)
    assert scheduler.timesteps.tolist() == expected
    stride = scheduler.num_train_timesteps // scheduler.num_inference_steps  # what step() moves by
    assert all(a - b == stride for a, b in zip(expected, expected[1:]))
    assert expected[-1] - stride < stride  # the last step lands at (or next to) the clean end


@pytest.mark.parametrize("strength, steps, message", [(0.0, 2, "strength"), (1.5, 2, "strength"), (0.7, 2, "strides")])
def test_guided_schedule_refuses_starts_the_scheduler_cannot_take(strength, steps, message):
    with pytest.raises(ValueError, match=message):
        trailing_schedule(TrustingDenoiser().make_scheduler(), steps, strength)


def test_guided_start_is_the_guide_noised_to_the_first_timestep():
    model = TrustingDenoiser()
    guide, context = torch.randn(3, 2, 6, 6), torch.randn(3, 4, 2, 6, 6)
    settings = SamplerSettings(steps=2, temperature=1.0, strength=0.5)
    sample_latents(model, context, torch.full((3,), 0.5), torch.full((3,), 20.0), settings, torch.Generator().manual_seed(0),
                   guide=guide)
    first_t, first_input = model.calls[0]
    noise = torch.randn((1, 3, 2, 6, 6), generator=torch.Generator().manual_seed(0))[0]
    alpha = model.alphas[499]
    assert first_t == 499 and [t for t, _ in model.calls] == [499, 249]
    torch.testing.assert_close(first_input, alpha.sqrt() * guide + (1 - alpha).sqrt() * noise)


@pytest.mark.parametrize("order, temporal", [("parallel", False), ("autoregressive", False), ("parallel", True)])
def test_a_noise_free_guide_comes_back_in_its_own_slot(order, temporal):
    acquired = torch.randn(3, 4, 2, 6, 6)
    guide = torch.randn(3, 6, 2, 6, 6)  # 3 gaps x 2 missing slices (factor 3), per stack or frame
    settings = SamplerSettings(steps=2, temperature=0.0, strength=0.5, order=order, chunk=4)
    latents, targets = fill_latents(TrustingDenoiser(), acquired, 3, 10.0, settings, torch.Generator().manual_seed(0),
                                    temporal=temporal, guide=guide)
    assert targets == [1, 2, 4, 5, 7, 8]
    torch.testing.assert_close(latents[0], guide, rtol=1e-4, atol=1e-4)


def test_fill_latents_refuses_a_guide_of_the_wrong_shape():
    with pytest.raises(ValueError, match="guide must hold"):
        fill_latents(TrustingDenoiser(), torch.randn(1, 3, 2, 6, 6), 2, 10.0, SamplerSettings(steps=1, strength=0.5),
                     torch.Generator(), guide=torch.randn(1, 3, 2, 6, 6))


def test_registration_guide_encodes_the_registration_baselines_slices():
    """With an identity 'autoencoder' the guide is exactly the registration baseline's normalised missing slices."""
    from calid.methods.baselines import interpolate
    from calid.methods.calid_codec import registration_guide
    from calid.phantom.generator import make_phantom
    from calid.models.preprocess import normalise

    class Identity:
        def encode(self, images):
            return images

    stack = make_phantom(n_slices=4, size=(40, 40), seed=3, n_frames=1).image.array[0].astype(np.float32)
    scale = float(np.percentile(stack, 99.5))
    spacing = (1.5, 1.5, 10.0)
    guide, images = registration_guide(Identity(), stack[None], scale, 3, spacing, range(1, 3), "cpu", Progress("none"))
    dense = interpolate(stack, 3, method="registration", spacing=spacing)
    assert guide.shape == (1, 4, 1, 40, 40) and images.shape == (1, 4, 40, 40)
    np.testing.assert_allclose(guide[0, :, 0].numpy(), normalise(dense[[4, 5, 7, 8]], scale), atol=1e-6)
    np.testing.assert_array_equal(images[0].numpy(), guide[0, :, 0].numpy())


def test_fill_guided_by_registration_differs_from_unguided_and_names_its_stage(model_dir):
    array = np.random.default_rng(2).uniform(0, 500, size=(1, 3, 12, 12)).astype(np.float32)
    kwargs = {"steps": 2, "seed": 0, "device": "cpu", "model": model_dir}
    progress = Progress("none")
    guided, _ = fill(array, 2, (1.5, 1.5, 10.0), progress, guide="registration", guide_strength=0.5, **kwargs)
    unguided, _ = fill(array, 2, (1.5, 1.5, 10.0), Progress("none"), guide="none", **kwargs)
    np.testing.assert_array_equal(guided[:, ::2], unguided[:, ::2])
    assert np.abs(guided[:, 1::2] - unguided[:, 1::2]).max() > 1e-3
    assert "register" in progress.stage_seconds


# 0.8 with 2 steps: a stride neither the tiny (10) nor the bundled (1000 timesteps) schedule can take
@pytest.mark.parametrize("guide, strength, message", [("flow", 0.5, "guide must be one of"), ("registration", 0.8, "strides")])
def test_fill_refuses_an_unknown_guide_or_a_start_it_cannot_take(model_dir, guide, strength, message):
    from calid.errors import InputError

    with pytest.raises(InputError, match=message):
        fill(np.ones((1, 2, 8, 8), np.float32), 2, (1, 1, 1), Progress("none"), steps=2, device="cpu", model=model_dir,
             guide=guide, guide_strength=strength)


@pytest.mark.parametrize("view", range(8))
def test_every_view_is_undone_by_its_inverse_on_non_square_latents(view):
    from calid.methods.sampling import VIEWS, view_of

    latents = torch.randn(2, 4, 3, 5, 7)
    moved = view_of(latents, VIEWS[view])
    assert moved.shape[-2:] == ((7, 5) if VIEWS[view][2] else (5, 7))
    assert view == 0 or moved.shape != latents.shape or not torch.equal(moved, latents)
    torch.testing.assert_close(view_of(moved, VIEWS[view], inverse=True), latents, rtol=0, atol=0)


class CornerDenoiser(torch.nn.Module):
    """Predicts a ramp that grows towards the bottom-right corner of what it is shown (not flip-invariant)."""

    def forward(self, noisy, timesteps, context, fraction, gap_mm, **kwargs):
        rows = torch.arange(noisy.shape[-2], dtype=noisy.dtype).view(-1, 1)
        cols = torch.arange(noisy.shape[-1], dtype=noisy.dtype).view(1, -1)
        return (rows + 10 * cols).expand_as(noisy).clone()


@pytest.mark.parametrize("views, expected", [
    (1, [[0, 10, 20], [1, 11, 21]]),   # the plain call
    (2, [[10, 10, 10], [11, 11, 11]]),  # averaged with its left-right mirror: columns even out
    (4, [[10.5, 10.5, 10.5], [10.5, 10.5, 10.5]]),  # and up-down: a constant
])
def test_predictions_are_averaged_over_the_views_in_the_original_frame(views, expected):
    from calid.methods.sampling import predict_in_views

    noisy = torch.zeros(1, 2, 2, 3)
    context = torch.zeros(1, 4, 2, 2, 3)
    prediction = predict_in_views(CornerDenoiser(), noisy, torch.zeros(1), context, torch.zeros(1), torch.zeros(1), views, {})
    torch.testing.assert_close(prediction[0, 0], torch.tensor(expected, dtype=torch.float32))


def test_views_leave_an_equivariant_prediction_unchanged_and_change_a_real_one(denoiser):
    trusting = TrustingDenoiser()
    plain = draw(trusting, 0, SamplerSettings(steps=2, temperature=1.0))
    viewed = draw(trusting, 0, SamplerSettings(steps=2, temperature=1.0, views=8))
    torch.testing.assert_close(plain, viewed)  # a per-pixel denoiser is the same in every view
    one, eight = draw(denoiser, 0, SamplerSettings(steps=2, temperature=1.0)), draw(denoiser, 0, SamplerSettings(steps=2, views=8, temperature=1.0))
    assert (one - eight).abs().max() > 1e-4


@pytest.mark.parametrize("views", [0, 3, 16])
def test_sampler_settings_refuse_a_view_count_without_a_meaning(views):
    with pytest.raises(ValueError, match="views must be one of 1, 2, 4, 8"):
        SamplerSettings(views=views)


def test_guide_blend_mixes_the_registration_estimate_into_synthesised_slices_only(model_dir):
    from calid.methods.baselines import interpolate

    array = np.random.default_rng(5).uniform(50, 500, size=(1, 3, 12, 12)).astype(np.float32)
    spacing = (1.5, 1.5, 10.0)
    kwargs = {"steps": 2, "seed": 0, "device": "cpu", "model": model_dir, "guide": "registration", "views": 2}
    plain, _ = fill(array, 2, spacing, Progress("none"), guide_blend=0.0, **kwargs)
    mixed, _ = fill(array, 2, spacing, Progress("none"), guide_blend=0.3, **kwargs)
    registration = interpolate(array[0], 2, method="registration", spacing=spacing)
    np.testing.assert_array_equal(mixed[:, ::2], array)
    made, expected = mixed[0, 1::2], 0.7 * plain[0, 1::2] + 0.3 * registration[1::2]
    inside = plain[0, 1::2] > 0  # (the untrained decoder's negative values are clipped to 0 before and after the mix)
    assert inside.mean() > 0.3
    np.testing.assert_allclose(made[inside], expected[inside], rtol=1e-4, atol=1e-2)
    assert np.all(made[~inside] <= expected[~inside] + 1e-2)
    assert np.abs(mixed - plain).max() > 1.0


def test_guide_detail_takes_the_fine_band_from_the_guide_and_keeps_acquired_slices_bit_exact(model_dir):
    from calid.methods.baselines import interpolate
    from calid.methods.detail_transfer import gaussian_lowpass, sigma_pixels

    array = np.random.default_rng(6).uniform(50, 500, size=(1, 3, 16, 16)).astype(np.float32)
    spacing = (1.5, 1.5, 10.0)
    kwargs = {"steps": 2, "seed": 0, "device": "cpu", "model": model_dir, "guide": "registration", "guide_blend": 0.0,
              "guide_detail_mm": 3.0}
    outputs = {d: fill(array, 2, spacing, Progress("none"), guide_detail=d, **kwargs)[0] for d in (0.0, 1.0)}
    for dense in outputs.values():
        np.testing.assert_array_equal(dense[:, ::2], array)
    sigma = sigma_pixels(3.0, spacing[:2])

    def fine(images):
        images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        return images - gaussian_lowpass(images, sigma)

    guide_fine = fine(interpolate(array[0], 2, method="registration", spacing=spacing)[1::2])
    distance = {d: float((fine(dense[0, 1::2]) - guide_fine).pow(2).mean()) for d, dense in outputs.items()}
    # the untrained decoder's fine band is noise; with d = 1 the registration estimate's replaces it
    # (up to the clipping of negative values), so the synthesised slices' fine band moves onto the guide's
    assert distance[1.0] < 0.25 * distance[0.0], distance


def test_guide_residual_decoding_returns_the_guide_image_where_the_sampler_keeps_the_guide_latent(model_dir, monkeypatch):
    import calid.methods.calid_fill as calid_fill
    from calid.methods.baselines import interpolate

    array = np.random.default_rng(7).uniform(50, 500, size=(1, 3, 12, 12)).astype(np.float32)
    spacing = (1.5, 1.5, 10.0)
    kwargs = {"steps": 2, "seed": 0, "device": "cpu", "model": model_dir, "guide": "registration", "guide_blend": 0.0}
    direct, _ = fill(array, 2, spacing, Progress("none"), decoding="direct", **kwargs)
    # a sampler that leaves each guide latent as it is: the correction is zero, the guide's own image comes back
    monkeypatch.setattr(calid_fill, "sample_missing", lambda *args, **kw: (args[-1][None], [1, 3]))
    kept, _ = fill(array, 2, spacing, Progress("none"), decoding="guide-residual", **kwargs)
    np.testing.assert_array_equal(kept[:, ::2], array)
    registration = interpolate(array[0], 2, method="registration", spacing=spacing)[1::2]
    np.testing.assert_allclose(kept[0, 1::2], registration.clip(min=0), rtol=1e-4, atol=1e-2)
    assert np.abs(direct[0, 1::2] - registration).max() > 1.0  # the tiny decoder alone does not give it back


def test_guide_residual_decoding_needs_a_guide(model_dir):
    from calid.errors import InputError

    with pytest.raises(InputError, match="guide 'none' does not make"):
        fill(np.ones((1, 2, 8, 8), np.float32), 2, (1, 1, 1), Progress("none"), device="cpu", model=model_dir,
             guide="none", decoding="guide-residual")
