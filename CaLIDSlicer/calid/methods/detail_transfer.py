"""Detail transfer: CaLID's low spatial frequencies, the guide's high ones.

The denoiser and decoder predict something close to the conditional mean: right on average but
smoother than a real slice. The guide's warped neighbours (demons or the learned motion guide) keep
real texture and edges but are further from the truth pixel by pixel. Split both at a Gaussian of
width ``sigma`` (mm, so the cut means the same anatomy on any in-plane spacing) and take a share
``detail`` of the guide's band above it in place of CaLID's:

    out = base + detail * (high(guide) - high(base)),   high(x) = x - G_sigma(x)

``detail`` 0 leaves ``base`` as it was; 1 gives G_sigma(base) + high(guide). ``base`` is CaLID's
image after the plain linear guide blend (:data:`calid.methods.calid_settings.DEFAULT_GUIDE_BLEND`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the settings and CLI read this module's neighbours without it
    import torch

#: Gaussian kernels are cut at this many standard deviations.
TRUNCATE = 4.0


def sigma_pixels(sigma_mm: float, spacing_xy: tuple[float, float]) -> tuple[float, float]:
    """(sigma along Y, sigma along X) in pixels for a Gaussian ``sigma_mm`` wide on pixels of ``spacing_xy`` (x, y) mm."""
    return float(sigma_mm) / float(spacing_xy[1]), float(sigma_mm) / float(spacing_xy[0])


def gaussian_lowpass(images: torch.Tensor, sigma_px: tuple[float, float]) -> torch.Tensor:
    """Gaussian low-pass of CPU ``images`` (..., Y, X) with per-axis ``sigma_px`` (Y, X); borders replicated, so a flat image stays flat.

    SciPy's separable filter: about 5x faster on the CPU than a single-channel torch convolution
    (the decoded images are on the CPU by then), the same values to float32 rounding.
    """
    import torch
    from scipy.ndimage import gaussian_filter

    array = images.detach().float().numpy()
    sigma = (0.0,) * (array.ndim - 2) + tuple(float(s) for s in sigma_px)
    return torch.from_numpy(gaussian_filter(array, sigma, mode="nearest", truncate=TRUNCATE))


def transfer_detail(base: torch.Tensor, guide: torch.Tensor, detail: float, sigma_px: tuple[float, float]) -> torch.Tensor:
    """``base`` (..., Y, X) with a share ``detail`` of its band above ``sigma_px`` replaced by ``guide``'s (broadcast against ``base``).

    Linear filtering lets the two high-pass bands come from one filtered difference:
    high(guide) - high(base) = d - G(d) with d = guide - base.
    """
    difference = guide - base
    return base + detail * (difference - gaussian_lowpass(difference, sigma_px))


def mix_guide(images: torch.Tensor, guide: torch.Tensor, blend: float, detail: float,
              sigma_px: tuple[float, float]) -> torch.Tensor:
    """The plain blend (1 - blend) * images + blend * guide, then the detail transfer (each skipped at 0)."""
    base = images if blend == 0 else (1 - blend) * images + blend * guide
    return base if detail == 0 else transfer_detail(base, guide, detail, sigma_px)


def sharpen(images: torch.Tensor, amount: float, sigma_px: tuple[float, float]) -> torch.Tensor:
    """Unsharp mask: ``images + amount * (images - G_sigma(images))`` (a no-op at amount 0).

    It restores contrast the sampler's near-mean estimate lost, from the estimate itself; it
    amplifies the estimate's errors as much as its detail, hence a PSNR cost (measured, not assumed).
    """
    return images if amount == 0 else images + amount * (images - gaussian_lowpass(images, sigma_px))


def high_band_energy(images: torch.Tensor, sigma_px: tuple[float, float]) -> float:
    """Mean square of the band above ``sigma_px``: how much texture and edge an image holds (for checks and tests)."""
    band = images.float() - gaussian_lowpass(images, sigma_px)
    return float(band.pow(2).mean())

