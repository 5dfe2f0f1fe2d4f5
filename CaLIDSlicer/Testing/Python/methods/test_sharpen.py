"""Unsharp mask on the synthesised slices (``sharpen``/``sharpen_mm``): the filter, its checks, CLI and API."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.errors import InputError  # noqa: E402
from calid.methods.detail_transfer import gaussian_lowpass, high_band_energy, sharpen  # noqa: E402

SIGMA = (2.0, 2.0)


def _soft_disc() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    return gaussian_lowpass((x**2 + y**2 < 0.4).float()[None], (2.0, 2.0))


def test_zero_is_a_no_op_and_a_flat_image_stays_flat():
    image = _soft_disc()
    assert torch.equal(sharpen(image, 0.0, SIGMA), image)
    flat = torch.full((1, 16, 16), 0.7)
    torch.testing.assert_close(sharpen(flat, 1.0, SIGMA), flat)


def test_the_band_above_the_blur_grows_with_the_amount_and_the_mean_stays():
    image = _soft_disc()
    energies = [high_band_energy(sharpen(image, amount, SIGMA), SIGMA) for amount in (0.0, 0.5, 1.0)]
    assert energies[0] < energies[1] < energies[2]
    assert float(sharpen(image, 1.0, SIGMA).mean()) == pytest.approx(float(image.mean()), abs=1e-3)
    assert float(sharpen(image, 1.0, SIGMA).std()) > float(image.std())  # more contrast


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "calid", "sharpen": -0.1}, r"sharpen must be a number in \[0, 2.0\]"),
    ({"method": "calid", "sharpen": 3.0}, r"sharpen must be a number in \[0, 2.0\]"),
    ({"method": "calid", "sharpen": 0.5, "sharpen_mm": 0}, "sharpen width must be a size in mm"),
    ({"method": "registration", "sharpen": 0.5}, "sharpen apply to the calid method only"),
])
def test_bad_settings_are_refused_before_any_work(oblique_stack, kwargs, message):
    from calid.methods.reconstruction import reconstruct

    with pytest.raises(InputError, match=message):
        reconstruct(oblique_stack, factor=2, **kwargs)


def test_cli_options_reach_reconstruct_and_evaluate():
    from calid.cli import build_parser
    from calid.commands.reconstruct import reconstruction_kwargs

    parser = build_parser()
    kwargs = reconstruction_kwargs(parser.parse_args(["reconstruct", "in.nii.gz", "-o", "o.nii.gz", "--sharpen", "0.5",
                                                      "--sharpen-mm", "3"]))
    assert (kwargs["sharpen"], kwargs["sharpen_mm"]) == (0.5, 3.0)
    defaults = reconstruction_kwargs(parser.parse_args(["reconstruct", "in.nii.gz", "-o", "o.nii.gz"]))
    assert (defaults["sharpen"], defaults["sharpen_mm"]) == (None, None)  # the engine's defaults apply
    evaluated = parser.parse_args(["evaluate", "phantom", "--sharpen", "0.25"])
    assert evaluated.sharpen == 0.25


def test_sharpened_synthesised_slices_have_more_contrast_and_acquired_ones_pass_through():
    from calid.methods.reconstruction import calid_model_available, reconstruct
    from calid.phantom.generator import make_phantom

    if not calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    stack = make_phantom(n_slices=4, n_frames=1, size=(48, 48), pixel_spacing=2.0, seed=4, as_3d=True).image
    plain = reconstruct(stack, factor=2, method="calid", device="cpu")
    sharp = reconstruct(stack, factor=2, method="calid", device="cpu", sharpen=1.0, sharpen_mm=4.0)
    assert sharp.sampler["sharpen"] == 1.0 and sharp.sampler["sharpen_mm"] == 4.0 and plain.sampler["sharpen"] == 0.0
    np.testing.assert_array_equal(sharp.volume.array[::2], stack.array)
    assert sharp.volume.array[1::2].astype(float).std() > plain.volume.array[1::2].astype(float).std()
