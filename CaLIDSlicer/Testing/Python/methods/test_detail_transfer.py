"""Detail transfer (CaLID's coarse band + the guide's fine band): the function, its checks, its CLI options."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.errors import InputError  # noqa: E402
from calid.methods.calid_settings import check_detail, check_guide  # noqa: E402
from calid.methods.detail_transfer import (  # noqa: E402
    gaussian_lowpass, high_band_energy, mix_guide, sigma_pixels, transfer_detail,
)

SIGMA = (2.0, 2.0)


def _smooth_and_textured(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth "CaLID" image (2, 32, 32) and a "guide" with the same shapes plus fine texture."""
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    disc = (x**2 + y**2 < 0.4).float()
    smooth = gaussian_lowpass(torch.stack([disc, 0.5 * disc]), (3.0, 3.0))
    texture = 0.2 * torch.randn(2, 32, 32, generator=generator)
    return smooth, torch.stack([disc, 0.5 * disc]) + texture


def test_detail_zero_leaves_the_blend_exactly_as_before():
    calid, guide = _smooth_and_textured()
    assert torch.equal(mix_guide(calid, guide, 0.0, 0.0, SIGMA), calid)
    assert torch.equal(mix_guide(calid, guide, 0.2, 0.0, SIGMA), (1 - 0.2) * calid + 0.2 * guide)  # the old mix, bit for bit


def test_a_guide_equal_to_calid_gives_calid_back_at_any_detail():
    calid, _ = _smooth_and_textured()
    for detail in (0.5, 1.0, 2.0):
        assert torch.equal(transfer_detail(calid, calid, detail, SIGMA), calid)


def test_detail_one_is_calid_coarse_band_plus_guide_fine_band():
    calid, guide = _smooth_and_textured()
    out = transfer_detail(calid, guide, 1.0, SIGMA)
    torch.testing.assert_close(out - gaussian_lowpass(calid, SIGMA), guide - gaussian_lowpass(guide, SIGMA), atol=1e-5, rtol=0)


def test_a_guide_that_differs_only_coarsely_changes_nothing():
    calid, _ = _smooth_and_textured()
    shifted = calid + 0.3  # an intensity offset: no fine detail to transfer (flat borders stay flat)
    torch.testing.assert_close(transfer_detail(calid, shifted, 1.0, SIGMA), calid, atol=1e-5, rtol=0)


def test_fine_band_energy_grows_with_detail_and_the_coarse_band_stays_calids():
    calid, guide = _smooth_and_textured()
    energies = [high_band_energy(mix_guide(calid, guide, 0.0, d, SIGMA), SIGMA) for d in (0.0, 0.5, 1.0, 1.5)]
    assert all(a < b for a, b in zip(energies, energies[1:])), energies
    guide_energy = high_band_energy(guide, SIGMA)
    assert energies[0] < 0.25 * guide_energy and energies[2] > 0.8 * guide_energy  # d = 1: most of the guide's texture
    coarse = gaussian_lowpass(mix_guide(calid, guide, 0.0, 1.0, SIGMA), (6.0, 6.0))
    assert (coarse - gaussian_lowpass(calid, (6.0, 6.0))).abs().max() < 0.05  # far below the texture's 0.2


def test_samples_broadcast_against_one_guide_per_slice():
    calid, guide = _smooth_and_textured()
    samples = torch.stack([calid, calid + 0.1])  # (S, M, Y, X) against guide (M, Y, X)
    out = mix_guide(samples, guide, 0.2, 1.0, SIGMA)
    assert out.shape == samples.shape
    torch.testing.assert_close(out[1], mix_guide(calid + 0.1, guide, 0.2, 1.0, SIGMA))


def test_the_cut_is_in_mm_so_each_axis_gets_its_own_pixels():
    assert sigma_pixels(3.0, (1.5, 1.25)) == pytest.approx((2.4, 2.0))  # (Y, X) from spacing (x, y)
    image = torch.zeros(1, 41, 41)
    image[0, 20, 20] = 1.0
    blurred = gaussian_lowpass(image, sigma_pixels(3.0, (1.5, 1.25)))[0]
    assert blurred.sum() == pytest.approx(1.0, abs=1e-5)
    along_y = (blurred.sum(1) * (torch.arange(41) - 20.0) ** 2).sum().sqrt()
    along_x = (blurred.sum(0) * (torch.arange(41) - 20.0) ** 2).sum().sqrt()
    assert float(along_y) == pytest.approx(2.4, rel=0.05) and float(along_x) == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("detail, detail_mm, message", [
    (-0.1, 3.0, r"guide detail must be a number in \[0, 2.0\]"),
    (2.5, 3.0, r"guide detail must be a number in \[0, 2.0\]"),
    (float("nan"), 3.0, r"guide detail must be a number"),
    (True, 3.0, r"guide detail must be a number"),
    (1.0, 0.0, r"guide detail width must be a size in mm in \(0, 20.0\]"),
    (1.0, -2.0, r"guide detail width must be a size in mm"),
    (1.0, float("inf"), r"guide detail width must be a size in mm"),
    (1.0, "3", r"guide detail width must be a size in mm"),
])
def test_out_of_range_detail_settings_are_refused_with_what_is_allowed(detail, detail_mm, message):
    with pytest.raises(InputError, match=message):
        check_detail(detail, detail_mm)


def test_detail_needs_a_guide_to_take_it_from():
    with pytest.raises(InputError, match="which guide 'none' does not make"):
        check_guide("none", 0.5, 2, detail=1.0)
    check_guide("registration", 0.5, 2, detail=1.0, detail_mm=1.5)  # accepted


@pytest.mark.parametrize("kwargs, message", [
    ({"factor": 2, "method": "calid", "guide_detail": 3.0}, r"guide detail must be a number in \[0, 2.0\]"),
    ({"factor": 2, "method": "calid", "guide_detail": 1.0, "guide_detail_mm": 0}, "guide detail width must be a size in mm"),
    ({"factor": 2, "method": "calid", "guide": "none", "guide_detail": 1.0}, "which guide 'none' does not make"),
    ({"factor": 2, "method": "linear", "guide_detail": 1.0}, "guide_detail apply to the calid method only"),
    ({"factor": 2, "method": "cubic", "guide_detail_mm": 2.0}, "guide_detail_mm apply to the calid method only"),
])
def test_reconstruct_refuses_bad_detail_settings_before_any_work(oblique_stack, kwargs, message):
    from calid.methods.reconstruction import reconstruct

    with pytest.raises(InputError, match=message):
        reconstruct(oblique_stack, **kwargs)


def test_cli_detail_options_reach_reconstruct_and_evaluate():
    from calid.cli import build_parser
    from calid.commands.reconstruct import reconstruction_kwargs

    parser = build_parser()
    args = parser.parse_args(["reconstruct", "in.nii.gz", "-o", "out.nii.gz", "--guide-detail", "0.5", "--guide-detail-mm", "1.5"])
    kwargs = reconstruction_kwargs(args)
    assert (kwargs["guide_detail"], kwargs["guide_detail_mm"]) == (0.5, 1.5)
    defaults = reconstruction_kwargs(parser.parse_args(["reconstruct", "in.nii.gz", "-o", "out.nii.gz"]))
    assert (defaults["guide_detail"], defaults["guide_detail_mm"]) == (None, None)  # the engine's defaults apply
    evaluated = parser.parse_args(["evaluate", "phantom", "--guide-detail", "1", "--guide-detail-mm", "3"])
    assert (evaluated.guide_detail, evaluated.guide_detail_mm) == (1.0, 3.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["reconstruct", "in.nii.gz", "-o", "out.nii.gz", "--guide-detail", "sharp"])


def test_reconstruct_records_the_detail_settings_for_the_report():
    from calid.methods.reconstruction import diffusion_options

    options = diffusion_options("calid", None, None, 0, "cpu", None, guide="motion", guide_detail=1.0, guide_detail_mm=1.5)
    assert (options["guide_detail"], options["guide_detail_mm"]) == (1.0, 1.5)
    default = diffusion_options("calid", None, None, 0, "cpu", None)
    from calid.methods.calid_settings import DEFAULT_GUIDE_DETAIL, DEFAULT_GUIDE_DETAIL_MM

    assert (default["guide_detail"], default["guide_detail_mm"]) == (DEFAULT_GUIDE_DETAIL, DEFAULT_GUIDE_DETAIL_MM)
    assert diffusion_options("calid", None, None, 0, "cpu", None, guide="none")["guide_detail"] == 0.0
