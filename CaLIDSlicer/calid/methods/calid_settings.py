"""The calid method's settings: defaults chosen on validation patients, the values allowed, and their checks.

Kept apart from the fill so the CLI, the public ``reconstruct``, training and the bench can read
and check them without loading torch or a model.
"""

from __future__ import annotations

from calid.errors import InputError
from calid.methods.sampler_settings import SamplerSettings, schedule_stride

#: The bundled CaLID 3D model (denoiser; it names its VAE in its config) and the 2D+T one (cines).
DEFAULT_MODEL = "calid-denoiser-acdc"
DEFAULT_TEMPORAL_MODEL = "calid-denoiser-2dt-acdc"
#: Initial-noise scale. One sample: 0, the deterministic estimate (best PSNR/SSIM on the
#: validation patients). Several samples: 1, true diffusion samples whose spread is the uncertainty.
SINGLE_SAMPLE_TEMPERATURE = 0.0
MULTI_SAMPLE_TEMPERATURE = 1.0
DEFAULT_ETA = 0.0
#: "residual": linear image blend + decode(sampled) - decode(linear latent blend), so the
#: autoencoder's own reconstruction error cancels; "direct": decode(sampled) alone; "guide-residual":
#: the guide's image + decode(sampled) - decode(guide latent), so the warped neighbours keep the
#: texture the autoencoder would lose and only the sampler's correction goes through the decoder
#: (needs a guide; one more decode per slice).
DEFAULT_DECODING = "direct"
DECODINGS = ("residual", "direct", "guide-residual")
#: "registration": the sampler starts from the latent of the registration-based estimate
#: (neighbours morphed into each other, :mod:`calid.methods.registration`) noised to GUIDE_STRENGTH of
#: the schedule, so the denoiser refines a motion-aware first guess; "motion": the same with the learned
#: motion guide (:mod:`calid.models.motion`, model calid-motion-acdc) in place of demons; "none": from pure noise.
#: registration stays the default: see docs/results/acdc_val_v2_tradeoff.md.
#: On the ACDC validation patients (heart box, 2 steps) strength 0.5 gave 18.86 dB / 0.456 SSIM
#: against 18.79 / 0.440 unguided (0.4: 18.69 / 0.457; 0.25: 18.51 / 0.455; docs/results/acdc_val_guide.md).
GUIDES = ("registration", "motion", "none")
DEFAULT_GUIDE = "registration"
#: How the registration guide's latent is made: "encode" runs the encoder on every morphed image;
#: "warp" moves the acquired neighbours' latents by the same motion (:mod:`calid.methods.latent_warp`),
#: no encoder call: faster (no encoding of the synthesised slices' guides), a little softer on ACDC
#: validation (docs/results/acdc_val_guide_latents.md).
GUIDE_LATENTS = ("encode", "warp")
DEFAULT_GUIDE_LATENTS = "encode"
DEFAULT_GUIDE_STRENGTH = 0.5
#: Arithmetic of the networks: "bfloat16" runs convolutions and matrix products in bfloat16 (fp32
#: accumulation) through autocast, "float32" runs everything in float32, "auto" picks bfloat16 where the
#: hardware has native bfloat16 matrix units (CUDA GPUs with bf16, x86 CPUs with AMX) and float32
#: elsewhere. On the project's AMX CPU bfloat16 decodes about 2.6x faster; on ACDC validation it moved
#: heart-box PSNR / SSIM by less than 0.01 dB / 0.001 (docs/results/bench_cpu_precision.md).
#: Acquired slices are never computed, so they stay bit-exact either way.
PRECISIONS = ("auto", "float32", "bfloat16")
DEFAULT_PRECISION = "auto"
#: Share of the registration estimate in each synthesised image when the start is guided:
#: (1 - w) * CaLID + w * registration. The denoiser predicts something close to the conditional
#: mean, smoother than a real slice; the morphed neighbours keep real texture. ACDC val (10 volumes,
#: heart box PSNR / SSIM): w 0 18.86 / 0.456, 0.1 18.88 / 0.459, 0.2 18.88 / 0.460, 0.3 18.87 / 0.460;
#: ACDC cine val (2D+T): w 0 18.28 / 0.482, 0.2 18.38 / 0.487 (docs/results/acdc_val_guide.md).
DEFAULT_GUIDE_BLEND = 0.2
#: Detail transfer (:mod:`calid.methods.detail_transfer`): the share of the guide's image band finer
#: than a Gaussian of DEFAULT_GUIDE_DETAIL_MM that replaces CaLID's own (0: off; 1: all of it; up to
#: MAX_GUIDE_DETAIL sharpens beyond the guide). CaLID keeps the coarser band, where its PSNR lead is.
#: Off by default: it buys texture at about the plain blend's price. ACDC val (10 volumes, heart box
#: PSNR / SSIM / gradient ratio): off 18.88 / 0.460 / 0.48; 0.5 at 1.5 mm 18.83 / 0.454 / 0.53; 1 at
#: 1.5 mm 18.72 / 0.443 / 0.60; 1 at 3 mm 18.52 / 0.428 / 0.69; with blend 0.5, 0.5 at 1.5 mm
#: 18.71 / 0.449 / 0.60 (blend 0.7 alone 18.61 / 0.446 / 0.63); on cines it raises temporal error
#: (docs/results/acdc_val_v2_tradeoff.md). 1.5 mm (about a pixel) costs less PSNR per unit of
#: texture than 3 mm, hence the default width.
DEFAULT_GUIDE_DETAIL = 0.0
DEFAULT_GUIDE_DETAIL_MM = 1.5
MAX_GUIDE_DETAIL = 2.0
MAX_GUIDE_DETAIL_MM = 20.0
#: Unsharp mask on the synthesised slices: out + amount * (out - G_width(out)), after the blend and the
#: detail transfer. The sampler's estimate is close to a conditional mean, flatter than a real slice; this
#: restores contrast from the estimate itself (nothing from the guide). 0 (off) by default: every amount
#: costs heart-box PSNR (docs/results/acdc_val_v2_tradeoff.md, session 10).
DEFAULT_SHARPEN = 0.0
DEFAULT_SHARPEN_MM = 4.0
MAX_SHARPEN = 2.0
#: In-plane views each denoiser prediction is averaged over (:data:`calid.methods.sampling.VIEWS`), and the
#: counts allowed. 8 views cost 8 times the sampling and gave ACDC val +0.06 dB at equal SSIM (3D) but
#: ACDC cine val -0.003 SSIM (2D+T), so the default is 1.
DEFAULT_VIEWS = 1
#: Slices per network call; bounds memory on large inputs.
CHUNK = 32
#: Image pixels per autoencoder call (CHUNK slices of 256 x 256): with this (and the fill's latent
#: pixels per round), working memory stays near its 256 x 256 level on any study size.
ROUND_IMAGE_PIXELS = CHUNK * 256 * 256

#: Training timesteps of the bundled denoisers: what options are checked against before a model is loaded.
TRAIN_TIMESTEPS = 1000


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but torch sees no CUDA GPU; use device 'cpu' or 'auto'")
    return device


def sampler_settings(steps: int, samples: int = 1, order: str = "parallel", temperature: float | None = None,
                     strength: float = 1.0, views: int = 1):
    """The sampler settings of the calid method (also used by the bench's pixel-space comparator)."""
    if temperature is None:
        temperature = SINGLE_SAMPLE_TEMPERATURE if samples == 1 else MULTI_SAMPLE_TEMPERATURE
    return SamplerSettings(steps=steps, samples=samples, eta=DEFAULT_ETA, temperature=temperature, chunk=CHUNK, order=order,
                           strength=strength, views=views)


#: Largest starting-noise scale accepted: beyond about 1 the sampler starts further from anything it was trained on.
MAX_TEMPERATURE = 2.0


def number_within(value, low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> bool:
    """True for a real number (not a bool) in [low, high]; ``open_low``/``open_high`` leave that end out."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    return above and below


def check_temperature(temperature: float | None, samples: int = 1) -> float:
    """The starting-noise scale to use: ``temperature``, or the default for ``samples`` when None; InputError if unusable.

    0 gives the deterministic estimate (closest to the conditional mean: best PSNR, smoothest
    slices), 1 a true diffusion sample (texture of a real slice, further from the truth pixel by
    pixel); the trade-off is measured in docs/results/acdc_val_v2_tradeoff.md.
    """
    if temperature is None:
        return SINGLE_SAMPLE_TEMPERATURE if samples == 1 else MULTI_SAMPLE_TEMPERATURE
    if not number_within(temperature, 0, MAX_TEMPERATURE):
        raise InputError(f"temperature must be a number in [0, {MAX_TEMPERATURE:g}] (0: deterministic estimate, "
                         f"1: a true diffusion sample), not {temperature!r}")
    return float(temperature)


#: 2D+T: width of the Gaussian the synthesised slices are smoothed with along time, as a share of the
#: cine's frame count (a cine is one periodic heartbeat, so the filter wraps around): 1.5 frames at
#: ACDC's 30, 1 at Sunnybrook's 20, next to nothing at 4. Frame-to-frame flicker of what the sampler
#: and the guide draw frame by frame is not in the heart's motion; measured on ACDC cine validation
#: patients (docs/results/acdc_val_temporal_smoothing.md). 3D mode treats every frame on its own: 0 there.
DEFAULT_TEMPORAL_SMOOTHING_SHARE = 0.05
#: Wider than this (frames) blurs the motion itself (ACDC cines have 28-35 frames per heartbeat).
MAX_TEMPORAL_SMOOTHING = 5.0


def check_temporal_smoothing(sigma: float | None, mode: str, frames: int = 1) -> float:
    """The temporal Gaussian width in frames: ``sigma``, or the default of ``mode`` for ``frames`` when None.

    InputError if ``sigma`` is unusable, or asked for on a volume of one frame (``frames`` 1).
    """
    if sigma is None:
        return round(DEFAULT_TEMPORAL_SMOOTHING_SHARE * frames, 3) if mode == "2dt" and frames > 1 else 0.0
    if not number_within(sigma, 0, MAX_TEMPORAL_SMOOTHING):
        raise InputError(f"temporal smoothing must be a number of frames in [0, {MAX_TEMPORAL_SMOOTHING:g}] "
                         f"(0: off), not {sigma!r}")
    if sigma and frames < 2:
        raise InputError(f"temporal smoothing {sigma!r} works along the frames of a cine, and this volume has "
                         "one frame; drop it")
    return float(sigma)


def check_guide(guide: str, strength: float, steps: int, timesteps: int = TRAIN_TIMESTEPS, blend: float = 0.0,
                detail: float = 0.0, detail_mm: float = DEFAULT_GUIDE_DETAIL_MM) -> None:
    """Refuse an unknown guide, a blend outside [0, 1), a detail transfer out of range, or a strength the
    few-step schedule of ``timesteps`` cannot start from."""
    if guide not in GUIDES:
        raise InputError(f"guide must be one of {', '.join(GUIDES)}, not {guide!r}")
    if not number_within(blend, 0, 1, open_high=True):
        raise InputError(f"guide blend must be a number in [0, 1) (the guide estimate's share), not {blend!r}")
    check_detail(detail, detail_mm)
    if guide == "none" and detail:
        raise InputError(f"guide detail {detail!r} takes fine detail from the guide's estimate, which guide 'none' does not "
                         "make; use guide 'registration' or 'motion', or set guide detail 0")
    if guide == "none":
        return
    try:
        schedule_stride(timesteps, steps, strength)
    except ValueError as error:
        raise InputError(f"guide strength {strength!r} with {steps} steps: {error}") from None


def check_detail(detail: float, detail_mm: float) -> None:
    """Refuse a detail share outside [0, MAX_GUIDE_DETAIL] or a cut width that is not a size in (0, MAX_GUIDE_DETAIL_MM] mm."""
    _check_amount_and_width("guide detail", detail, MAX_GUIDE_DETAIL, "0: off, 1: the guide's fine detail in place of CaLID's",
                            detail_mm, "the Gaussian that separates coarse from fine detail", DEFAULT_GUIDE_DETAIL_MM)


def _check_amount_and_width(name: str, amount, most: float, meaning: str, width_mm, width_meaning: str, example: float) -> None:
    """InputError unless ``amount`` is in [0, most] and ``width_mm`` in (0, MAX_GUIDE_DETAIL_MM] (a filter's share and width)."""
    if not number_within(amount, 0, most):
        raise InputError(f"{name} must be a number in [0, {most}] ({meaning}), not {amount!r}")
    if not number_within(width_mm, 0, MAX_GUIDE_DETAIL_MM, open_low=True):
        raise InputError(f"{name} width must be a size in mm in (0, {MAX_GUIDE_DETAIL_MM}] ({width_meaning}; "
                         f"e.g. {example:g}), not {width_mm!r}")


def check_guide_latents(guide_latents: str, guide: str) -> None:
    """Refuse an unknown way of making the guide's latent, or "warp" with a guide that has no demons motion."""
    if guide_latents not in GUIDE_LATENTS:
        raise InputError(f"guide latents must be one of {', '.join(GUIDE_LATENTS)}, not {guide_latents!r}")
    if guide_latents == "warp" and guide != "registration":
        raise InputError(f"guide latents 'warp' moves the neighbours' latents by the registration's motion, which guide "
                         f"{guide!r} does not compute; use guide 'registration' or guide latents 'encode'")


def check_precision(precision: str) -> None:
    """Refuse an unknown arithmetic (see :data:`PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}; "
                         "'auto' picks bfloat16 where the hardware runs it natively")


def check_sharpen(amount: float, width_mm: float) -> None:
    """Refuse a sharpening amount outside [0, MAX_SHARPEN] or a width that is not a size in (0, MAX_GUIDE_DETAIL_MM] mm."""
    _check_amount_and_width("sharpen", amount, MAX_SHARPEN, "0: off; the share of the band above the Gaussian added again",
                            width_mm, "the Gaussian whose residual is added", DEFAULT_SHARPEN_MM)


def check_decoding(decoding: str, guide: str) -> None:
    """Refuse a decoding that is unknown or that needs a guide the run does not make."""
    if decoding not in DECODINGS:
        raise InputError(f"decoding must be one of {', '.join(DECODINGS)}, not {decoding!r}")
    if decoding == "guide-residual" and guide == "none":
        raise InputError("decoding 'guide-residual' adds the sampler's correction to the guide's image, which guide 'none' "
                         "does not make; use guide 'registration' or 'motion', or decoding 'direct'")
