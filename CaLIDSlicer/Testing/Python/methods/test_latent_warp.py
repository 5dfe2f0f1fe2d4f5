"""The registration guide's latents by warping the neighbours' latents (:mod:`calid.methods.latent_warp`)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("SimpleITK")

from calid.methods.latent_warp import latent_displacement, morph_latents, warp_latent  # noqa: E402
from calid.progress import Progress  # noqa: E402


class PixelLatents:
    """An 'autoencoder' whose latents are the images themselves (downsampling 1)."""

    downsampling = 1

    def encode(self, images):
        return images


def test_zero_motion_blends_the_two_latents_with_the_fraction_weights():
    prev, next_ = torch.rand(3, 8, 10), torch.rand(3, 8, 10)
    out = morph_latents(prev, next_, np.zeros((32, 40, 2), np.float32), np.array([0.25, 0.5]), (1.0, 1.0), 4)
    assert out.shape == (2, 3, 8, 10)
    torch.testing.assert_close(out[0], 0.75 * prev + 0.25 * next_)
    torch.testing.assert_close(out[1], 0.5 * prev + 0.5 * next_)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_a_motion_of_one_latent_pixel_moves_the_latent_by_one_pixel(monkeypatch, mode):
    import calid.methods.latent_warp as latent_warp

    monkeypatch.setattr(latent_warp, "LATENT_WARP_MODE", mode)
    latent = torch.arange(6 * 7, dtype=torch.float32).reshape(1, 6, 7)
    motion = np.zeros((24, 28, 2), np.float32)
    motion[..., 0] = 4 * 1.5  # x, in mm: 4 image pixels of 1.5 mm = one latent pixel at downsampling 4
    displacement = latent_displacement(motion, (1.5, 2.0), 4, (6, 7))
    torch.testing.assert_close(displacement[0], torch.ones(6, 7))
    torch.testing.assert_close(displacement[1], torch.zeros(6, 7))
    warped = warp_latent(latent, displacement, 1.0)  # sampled at x + 1
    torch.testing.assert_close(warped[0, :, :-1], latent[0, :, 1:])
    torch.testing.assert_close(warped[0, :, -1], latent[0, :, -1])  # the border continues outwards


def test_the_motion_is_padded_like_the_image_and_averaged_per_latent_pixel():
    motion = np.zeros((9, 10, 2), np.float32)  # 9 x 10 pixels pad to 12 x 12 at downsampling 4 (latent 3 x 3)
    motion[:, :, 1] = np.arange(9, dtype=np.float32)[:, None]  # y motion = row index (mm at 1 mm pixels)
    displacement = latent_displacement(motion, (1.0, 1.0), 4, (3, 3))
    rows = np.array([np.mean([0, 1, 2, 3]), np.mean([4, 5, 6, 7]), np.mean([8, 8, 8, 8])]) / 4  # bottom rows replicate row 8
    np.testing.assert_allclose(displacement[1, :, 0].numpy(), rows, rtol=1e-6)
    with pytest.raises(ValueError, match="smaller"):
        latent_displacement(motion, (1.0, 1.0), 4, (2, 3))


@pytest.mark.parametrize("mode, largest, mean", [("bilinear", 1e-3, 1e-4), ("bicubic", 0.15, 0.01)])
def test_warped_pixel_latents_match_the_registration_guide_images(monkeypatch, mode, largest, mean):
    """At downsampling 1 the latent warp must reproduce the image warp (same motion, same blend; linear
    exactly, cubic up to its sharper kernel)."""
    import calid.methods.latent_warp as latent_warp
    from calid.methods.calid_codec import registration_guide
    from calid.models.preprocess import normalise
    from calid.phantom.generator import make_phantom

    monkeypatch.setattr(latent_warp, "LATENT_WARP_MODE", mode)
    stack = make_phantom(n_slices=3, size=(48, 48), seed=4, n_frames=1, as_3d=True).image.array.astype(np.float32)
    source = stack[None]  # (T, Z, Y, X)
    scale = float(np.percentile(stack, 99.5))
    latents = torch.from_numpy(normalise(source, scale))[:, :, None]  # (T, Z, 1, Y, X)
    spacing = (1.4, 1.4, 10.0)
    encoded, images = registration_guide(PixelLatents(), source, scale, 4, spacing, range(2), "cpu", Progress())
    warped, same_images = registration_guide(PixelLatents(), source, scale, 4, spacing, range(2), "cpu", Progress(),
                                             latents=latents)
    assert warped.shape == encoded.shape == (1, 6, 1, 48, 48)
    torch.testing.assert_close(same_images, images)
    inner = (slice(None), slice(None), 0, slice(4, -4), slice(4, -4))  # away from the border rules of the two warps
    difference = (warped[inner] - encoded[inner]).abs()
    assert float(difference.max()) < largest and float(difference.mean()) < mean


def test_reconstruct_with_warped_guide_latents_keeps_measured_slices_and_says_so():
    pytest.importorskip("monai")
    from calid.methods.reconstruction import calid_model_available, reconstruct
    from calid.phantom.generator import make_phantom

    if not calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    stack = make_phantom(n_slices=4, n_frames=1, size=(48, 48), seed=4, as_3d=True).image
    warped = reconstruct(stack, factor=2, method="calid", device="cpu", guide_latents="warp")
    encoded = reconstruct(stack, factor=2, method="calid", device="cpu")
    assert warped.sampler["guide_latents"] == "warp" and encoded.sampler["guide_latents"] == "encode"
    np.testing.assert_array_equal(warped.volume.array[::2], stack.array)
    difference = np.abs(warped.volume.array[1::2].astype(float) - encoded.volume.array[1::2])
    assert 0 < difference.mean() < 0.1 * float(stack.array.std())  # another start, much the same slices


@pytest.mark.parametrize("options, message", [({"guide_latents": "decode"}, "guide latents must be one of encode, warp"),
                                              ({"guide": "motion", "guide_latents": "warp"}, "guide 'motion' does not"),
                                              ({"guide": "none", "guide_latents": "warp"}, "guide 'none' does not")])
def test_guide_latents_that_cannot_work_are_refused_before_any_model_loads(monkeypatch, options, message):
    import calid.methods.calid_fill as calid_fill
    from calid.errors import InputError
    from calid.methods.reconstruction import reconstruct
    from calid.phantom.generator import make_phantom

    def no_loading(*args, **kwargs):
        raise AssertionError("models were loaded before the options were checked")

    monkeypatch.setattr(calid_fill, "load_models", no_loading)
    stack = make_phantom(n_slices=3, n_frames=1, size=(32, 32), seed=1, as_3d=True).image
    with pytest.raises(InputError, match=message):
        reconstruct(stack, factor=2, method="calid", **options)
    with pytest.raises(InputError, match="calid method only"):
        reconstruct(stack, factor=2, method="registration", guide_latents="warp")


def test_the_estimate_drops_the_guide_encoding_with_warped_latents():
    from calid.methods.estimate import estimate, workload_for

    shape = (10, 256, 256)
    encoded = estimate(workload_for(shape, 8.0, factor=4, method="calid", mode="3d"))
    warped = estimate(workload_for(shape, 8.0, factor=4, method="calid", mode="3d", guide_latents="warp"))
    saved = encoded.stages["register"] - warped.stages["register"]
    assert saved == pytest.approx(estimate(workload_for(shape, 8.0, factor=4, method="calid", mode="3d")).stages["encode"]
                                  * 27 / 10, rel=1e-6)  # the 27 guides' encoding, at the acquired slices' rate
    assert warped.stages["register"] > 0


def test_warped_guide_latents_work_for_every_frame_of_a_cine_in_2dt_mode():
    pytest.importorskip("monai")
    from calid.methods.reconstruction import calid_model_available, reconstruct
    from calid.phantom.generator import make_phantom

    if not calid_model_available("calid-denoiser-2dt-acdc"):
        pytest.skip("the bundled 2D+T model is not installed")
    cine = make_phantom(n_slices=3, n_frames=4, size=(40, 40), pixel_spacing=4.0, seed=2).image
    result = reconstruct(cine, factor=2, mode="2dt", device="cpu", guide_latents="warp")
    assert result.sampler["guide_latents"] == "warp" and result.volume.array.shape == (4, 5, 40, 40)
    np.testing.assert_array_equal(result.volume.array[:, ::2], cine.array)
    assert np.isfinite(result.volume.array).all() and result.volume.array[:, 1::2].std() > 0


def test_every_round_of_a_large_study_warps_its_guide_latents(monkeypatch):
    """The sampler works in rounds of a few gaps; each round must use the warped latents, not only the first."""
    pytest.importorskip("monai")
    import calid.methods.calid_fill as calid_fill
    from calid.methods import calid_codec
    from calid.methods.reconstruction import calid_model_available
    from calid.phantom.generator import make_phantom

    if not calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    seen = []
    real = calid_codec.registration_guide

    def spy(*args, **kwargs):
        seen.append(args[-1] is not None if len(args) > 8 else kwargs.get("latents") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(calid_fill, "registration_guide", spy)
    monkeypatch.setattr(calid_fill, "ROUND_LATENT_PIXELS", 1)  # one gap per round
    source = make_phantom(n_slices=4, n_frames=1, size=(32, 32), seed=3, as_3d=True).image.array[None].astype(np.float32)
    calid_fill.fill(source, 2, (2.0, 2.0, 10.0), Progress("none"), device="cpu", guide_latents="warp", steps=2)
    assert seen == [True, True, True]
