"""Public API: make a sparse short-axis stack or cine dense along the slice axis.

``calid.reconstruct`` is what the CLI, the Slicer module and the tests all call.
It owns the parts every method shares: choosing the factor, geometry of the dense
grid, copying acquired slices back bit-exact, recording which slices were
synthesised, and mapping intensities back to the input's type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from calid.errors import InputError
from calid.methods.calid_settings import (DEFAULT_GUIDE, DEFAULT_GUIDE_BLEND, DEFAULT_GUIDE_DETAIL, DEFAULT_GUIDE_DETAIL_MM,
                                          DEFAULT_GUIDE_STRENGTH, DEFAULT_MODEL, DEFAULT_TEMPORAL_MODEL, DEFAULT_VIEWS, check_guide,
                                          DEFAULT_DECODING, check_decoding, check_temperature,
                                          check_temporal_smoothing, DEFAULT_GUIDE_LATENTS, check_guide_latents,
                                          DEFAULT_SHARPEN, DEFAULT_SHARPEN_MM, check_sharpen, DEFAULT_PRECISION, check_precision)
from calid.methods.output_dtype import output_dtype, to_output_dtype
from calid.methods.sampler_settings import VIEW_COUNTS
from calid.progress import Progress, ProgressMode, as_progress
from calid.io.volume import Volume

#: Classical methods, fastest first.
BASELINES = ("nearest", "linear", "cubic", "registration", "motion")
#: What ``method="auto"`` falls back to when no trained CaLID model is installed
#: (the best baseline in the README's held-out-slice table).
BEST_BASELINE = "registration"
#: Learned peers run for comparison only (never by "auto"); their weights are the user's own file.
PEERS = ("rife",)

#: Default diffusion settings, chosen on the ACDC validation patients (see the denoiser's model
#: card: 2 DDIM steps beat 10 in heart-box PSNR; 4 steps give the best SSIM).
DEFAULT_STEPS = 2
DEFAULT_SAMPLES = 1

#: fill(source (T, Z, Y, X), out (T, dense Z, Y, X), factor, spacing, progress, options) -> std or None;
#: writes the synthesised slices into ``out`` (the caller copies the acquired ones).
FillFunction = Callable[[np.ndarray, np.ndarray, int, tuple, Progress, dict], np.ndarray | None]


@dataclass(frozen=True)
class ReconstructionResult:
    """The dense volume and how it was made."""

    volume: Volume
    method: str
    factor: int
    uncertainty: Volume | None = None
    mode: str = "3d"  # "2dt": a cine made with the 2D+T model, all frames at once
    seed: int | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    sampler: dict = field(default_factory=dict)  # CaLID's settings (steps, samples, order, guide, ...); empty for baselines
    models: tuple[dict, ...] = ()  # identities of the networks used (calid.models.identity); empty for baselines
    device: str = "cpu"  # where the networks ran ("cpu" or "cuda"); baselines run on the CPU

    @property
    def synthesized(self) -> tuple[int, ...]:
        return self.volume.synthesized


def resolve_factor(volume: Volume, factor: int | None = None, spacing: float | None = None) -> int:
    """The integer upsampling factor from either ``factor`` or a target ``spacing`` in mm."""
    if (factor is None) == (spacing is None):
        raise InputError("give exactly one of factor (e.g. 2) or spacing (target slice spacing in mm)")
    if factor is not None:
        if isinstance(factor, bool) or int(factor) != factor or factor < 1:
            raise InputError(f"factor must be a positive integer, not {factor!r}")
        return int(factor)
    if not spacing or spacing <= 0:
        raise InputError(f"spacing must be a positive number of mm, not {spacing!r}")
    ratio = volume.slice_spacing / float(spacing)
    nearest = max(1, round(ratio))
    if abs(ratio - nearest) > 1e-3 * max(1.0, ratio):
        options = ", ".join(f"{volume.slice_spacing / k:g} mm" for k in range(max(1, nearest - 1), nearest + 2))
        raise InputError(
            f"spacing {spacing:g} mm does not divide the slice spacing {volume.slice_spacing:g} mm "
            f"into whole steps; choose one of {options} (or use factor=)"
        )
    return nearest


def _baseline_fill(method: str) -> FillFunction:
    def fill(source: np.ndarray, out: np.ndarray, factor: int, spacing: tuple, progress: Progress, options: dict):
        from calid.methods.baselines import interpolate

        with progress.stage(f"interpolate ({method})", source.shape[0]) as stage:
            for t, frame in enumerate(source):  # one frame at a time: float32 copies stay small
                out[t] = to_output_dtype(interpolate(frame.astype(np.float32), factor, method=method, spacing=spacing), out.dtype)
                stage.advance()
        if method == "motion" and "used" in options:  # the one baseline with a network: the report names it
            from calid.models.identity import identity_of
            from calid.models.motion import default_model

            options["used"].update(models=[i for i in (identity_of(default_model()),) if i])
        return None

    return fill


def _calid_fill(source: np.ndarray, out: np.ndarray, factor: int, spacing: tuple, progress: Progress, options: dict):
    from calid.methods.calid_fill import fill_into

    return fill_into(source, out, factor, spacing, progress, **options)


def _fill_function(method: str) -> FillFunction:
    if method in BASELINES:
        return _baseline_fill(method)
    if method == "calid":
        return _calid_fill
    if method in PEERS:
        from calid.methods.rife import fill_into

        return fill_into
    raise InputError(f"method must be one of {', '.join(('auto', 'calid', *BASELINES, *PEERS))}, not {method!r}")


#: Method names that pin the CaLID mode (evaluation and bench): per-frame 3D vs whole-cine 2D+T.
MODE_VARIANTS = {"calid-3d": ("calid", "3d"), "calid-2dt": ("calid", "2dt")}


def method_and_mode(name: str) -> tuple[str, str]:
    """('calid', '2dt') for 'calid-2dt'; any other method runs in mode 'auto'."""
    return MODE_VARIANTS.get(name, (name, "auto"))


def calid_model_available(model: str | None = None) -> bool:
    """True when the CaLID model can be found locally (no download is attempted)."""
    try:
        from calid.models.search import find_model

        find_model(model or DEFAULT_MODEL)
    except (ImportError, OSError, RuntimeError):
        return False
    return True


def resolve_method(method: str, model: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Turn ``"auto"`` into a concrete method and say why."""
    if method != "auto":
        return method, ()
    if calid_model_available(model):
        return "calid", ()
    return BEST_BASELINE, (
        f"no trained CaLID model is installed: used the best classical baseline ({BEST_BASELINE})",
    )


def _temporal_model(model: str | None) -> bool | None:
    """Whether the denoiser ``model`` (default: the bundled 2D+T one) is a 2D+T model; None when it is not installed."""
    try:
        from calid.models.format import read_config
        from calid.models.search import find_model

        path = Path(model) if model is not None and Path(model).is_dir() else find_model(model or DEFAULT_TEMPORAL_MODEL)
        return read_config(path).architecture == "calid-denoiser-2dt"
    except (ImportError, OSError, RuntimeError):
        return None


def resolve_mode(mode: str, method: str, volume: Volume, model: str | None = None) -> tuple[str, tuple[str, ...]]:
    """3D (frame by frame) or 2D+T (whole cine at once, coherent in time); only CaLID has a 2D+T model.

    ``auto`` takes 2D+T for a cine when the 2D+T model is installed (or ``model`` is one).
    """
    if mode not in ("auto", "3d", "2dt"):
        raise InputError(f"mode must be 'auto', '3d' or '2dt', not {mode!r}")
    if mode == "2dt" and not volume.is_cine:
        raise InputError("mode '2dt' needs a cine (T frames x Z slices); this input is a single 3D stack: use mode '3d'")
    if mode == "2dt" and method != "calid":
        raise InputError(f"mode '2dt' is a CaLID mode; method {method!r} reconstructs every frame on its own: use mode '3d'")
    if not volume.is_cine or method != "calid" or mode == "3d":
        return "3d", ("cine reconstructed frame by frame (3D mode)",) if volume.is_cine and method == "calid" else ()
    temporal = _temporal_model(model)
    if temporal:
        return "2dt", ()
    if mode == "2dt":
        what = f"model {model!r} is a 3D model" if temporal is False else f"the 2D+T model {model or DEFAULT_TEMPORAL_MODEL!r} is not installed"
        raise InputError(f"mode '2dt' needs a 2D+T CaLID model, but {what}; install it (calid models list) or use mode '3d'")
    return "3d", ("cine reconstructed frame by frame (3D mode): no 2D+T model is installed",)


def diffusion_options(method: str, steps: int | None, samples: int | None, seed: int | None,
                      device: str, model: str | None, order: str | None = None, mode: str = "3d",
                      guide: str | None = None, guide_strength: float | None = None, guide_blend: float | None = None,
                      views: int | None = None, guide_detail: float | None = None, guide_detail_mm: float | None = None,
                      temperature: float | None = None, decoding: str | None = None,
                      temporal_smoothing: float | None = None, frames: int = 1, guide_latents: str | None = None,
                      sharpen: float | None = None, sharpen_mm: float | None = None, precision: str | None = None) -> dict:
    """Options for the diffusion sampler; refuse them for methods that would ignore them."""
    if method != "calid":
        given = [name for name, value in (("steps", steps), ("samples", samples), ("order", order), ("guide", guide),
                                          ("guide_strength", guide_strength), ("guide_blend", guide_blend), ("views", views),
                                          ("guide_detail", guide_detail), ("guide_detail_mm", guide_detail_mm),
                                          ("temperature", temperature), ("decoding", decoding),
                                          ("temporal_smoothing", temporal_smoothing), ("guide_latents", guide_latents),
                                          ("sharpen", sharpen), ("sharpen_mm", sharpen_mm), ("precision", precision))
                 if value is not None]
        if given:
            raise InputError(f"{' and '.join(given)} apply to the calid method only, not {method!r}; drop them")
        return {}
    steps = DEFAULT_STEPS if steps is None else steps
    samples = DEFAULT_SAMPLES if samples is None else samples
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise InputError(f"steps must be a positive integer, not {steps!r}")
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise InputError(f"samples must be a positive integer, not {samples!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    order = order or "parallel"
    if order not in ("parallel", "autoregressive"):
        raise InputError(f"order must be 'parallel' or 'autoregressive', not {order!r}")
    guide = DEFAULT_GUIDE if guide is None else guide
    strength = DEFAULT_GUIDE_STRENGTH if guide_strength is None else guide_strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise InputError(f"guide_strength must be a number in (0, 1], not {strength!r}")
    if guide == "none" and guide_blend:
        raise InputError(f"guide_blend {guide_blend!r} mixes in the guide's estimate, which guide 'none' does not make; "
                         "use guide 'registration' or 'motion', or drop guide_blend")
    blend = DEFAULT_GUIDE_BLEND if guide_blend is None else guide_blend
    detail = DEFAULT_GUIDE_DETAIL if guide_detail is None else guide_detail  # check_guide refuses detail with guide 'none'
    detail_mm = DEFAULT_GUIDE_DETAIL_MM if guide_detail_mm is None else guide_detail_mm
    check_guide(guide, float(strength), int(steps), blend=blend, detail=detail, detail_mm=detail_mm)
    decoding = DEFAULT_DECODING if decoding is None else decoding
    check_decoding(decoding, guide)
    guide_latents = DEFAULT_GUIDE_LATENTS if guide_latents is None else guide_latents
    check_guide_latents(guide_latents, guide)
    sharpen = DEFAULT_SHARPEN if sharpen is None else sharpen
    sharpen_mm = DEFAULT_SHARPEN_MM if sharpen_mm is None else sharpen_mm
    check_sharpen(sharpen, sharpen_mm)
    precision = DEFAULT_PRECISION if precision is None else precision
    check_precision(precision)
    views = DEFAULT_VIEWS if views is None else views
    if isinstance(views, bool) or views not in VIEW_COUNTS:
        raise InputError(f"views must be one of {', '.join(map(str, VIEW_COUNTS))} (in-plane flips averaged), not {views!r}")
    return {"steps": int(steps), "samples": int(samples), "seed": seed or 0, "device": device, "model": model,
            "order": order, "mode": mode, "guide": guide, "guide_strength": float(strength),
            "guide_blend": float(blend) if guide != "none" else 0.0, "guide_detail": float(detail),
            "guide_detail_mm": float(detail_mm), "views": int(views),
            "temperature": check_temperature(temperature, int(samples)), "decoding": decoding,
            "temporal_smoothing": check_temporal_smoothing(temporal_smoothing, mode, frames),
            "guide_latents": guide_latents, "sharpen": float(sharpen), "sharpen_mm": float(sharpen_mm),
            "precision": precision}


def _peer_options(method: str, rife_weights, device: str) -> dict:
    """The checked weights file for a peer (fails before any work); refuse it for other methods."""
    if method not in PEERS:
        if rife_weights is not None:
            raise InputError(f"rife_weights applies to the rife method only, not {method!r}; drop it")
        return {}
    from calid.methods.rife import check_weights

    return {"weights": str(check_weights(rife_weights)), "device": device}


def reconstruct(
    volume: Volume,
    factor: int | None = None,
    spacing: float | None = None,
    method: str = "auto",
    mode: str = "auto",
    steps: int | None = None,
    samples: int | None = None,
    seed: int | None = 0,
    device: str = "auto",
    model: str | None = None,
    order: str | None = None,
    progress: Progress | ProgressMode | None = None,
    guide: str | None = None,
    guide_strength: float | None = None,
    guide_blend: float | None = None,
    views: int | None = None,
    rife_weights: str | Path | None = None,
    guide_detail: float | None = None,
    guide_detail_mm: float | None = None,
    temperature: float | None = None,
    decoding: str | None = None,
    temporal_smoothing: float | None = None,
    guide_latents: str | None = None,
    sharpen: float | None = None,
    sharpen_mm: float | None = None,
    precision: str | None = None,
) -> ReconstructionResult:
    """Dense volume with slice spacing divided by ``factor``; acquired slices unchanged.

    The dense grid keeps the input's first-slice position and directions; acquired
    slice ``i`` becomes slice ``i * factor`` and is copied bit-exact. All others are
    listed in ``result.volume.synthesized``. ``steps``/``samples``/``device``/``model``/``order``
    (all missing slices at once, or one after another) steer the CaLID sampler; ``samples > 1``
    also returns a per-voxel standard deviation (``result.uncertainty``). ``guide`` ("registration",
    the default, "motion" for the learned motion guide, or "none") and ``guide_strength`` say where the sampler starts (see
    :data:`calid.methods.calid_settings.GUIDES`); ``guide_blend`` is the guide estimate's share in the
    synthesised images and ``views`` the in-plane flips each prediction is averaged over. ``guide_detail``
    is the share of the guide's detail finer than a Gaussian of ``guide_detail_mm`` mm that replaces
    CaLID's own (:mod:`calid.methods.detail_transfer`; 0 is off).
    ``rife_weights`` is the Practical-RIFE file for method "rife" (else $CALID_RIFE_WEIGHTS).
    ``temperature`` scales the sampler's starting noise (see :func:`calid.methods.calid_settings.check_temperature`).
    ``decoding`` ("direct", "residual" or "guide-residual") says how sampled latents become images
    (see :data:`calid.methods.calid_settings.DECODINGS`). ``temporal_smoothing`` (frames; default 5 % of the frame
    count in mode "2dt", 0 in "3d") smooths the synthesised slices of a cine along time (:mod:`calid.methods.temporal_smoothing`).
    ``guide_latents`` ("encode" or "warp") says how the registration guide's latent is made
    (see :data:`calid.methods.calid_settings.GUIDE_LATENTS`). ``sharpen`` (0 is off) and ``sharpen_mm`` are
    an unsharp mask on the synthesised slices (:func:`calid.methods.detail_transfer.sharpen`).
    ``precision`` ("auto", "float32" or "bfloat16") is the networks' arithmetic (:mod:`calid.methods.precision`);
    the report records what "auto" became.
    """
    from calid.io.validate import check_fits_in_memory, validate_volume

    validate_volume(volume)
    factor = resolve_factor(volume, factor, spacing)
    check_fits_in_memory(volume.array.shape, volume.array.dtype, factor, samples=samples or 1)
    method, notes = resolve_method(method, model)
    fill = _fill_function(method)
    mode, mode_notes = resolve_mode(mode, method, volume, model)
    options = diffusion_options(method, steps, samples, seed, device, model, order, mode, guide, guide_strength,
                                guide_blend, views, guide_detail, guide_detail_mm, temperature, decoding,
                                temporal_smoothing, volume.n_frames, guide_latents, sharpen, sharpen_mm, precision)
    options.update(_peer_options(method, rife_weights, device))
    progress = as_progress(progress)
    earlier = dict(progress.stage_seconds)  # a shared Progress (evaluate, cohort) already holds other runs' times
    started = time.perf_counter()

    source = volume.array if volume.is_cine else volume.array[None]
    dense = np.zeros((source.shape[0], (source.shape[1] - 1) * factor + 1, *source.shape[2:]), output_dtype(source.dtype))
    used: dict = {}  # the calid fill records its device and models here
    std = fill(source, dense, factor, volume.spacing, progress, {**options, "used": used} if options or method == "motion" else options)
    acquired = np.arange(volume.n_slices) * factor
    dense[:, acquired] = source  # measured data passes through untouched
    synthesized = tuple(sorted(set(range(dense.shape[1])) - set(acquired.tolist())))

    out = volume.replace(
        array=dense if volume.is_cine else dense[0],
        synthesized=synthesized,
        **volume.dense_geometry(factor),
    )
    uncertainty = None
    if std is not None:
        std[:, acquired] = 0.0  # measured slices carry no synthesis uncertainty
        uncertainty = out.replace(array=std.astype(np.float32) if volume.is_cine else std[0].astype(np.float32))
    return ReconstructionResult(
        volume=out,
        method=method,
        factor=factor,
        uncertainty=uncertainty,
        mode=mode,
        seed=seed,
        seconds=time.perf_counter() - started,
        stage_seconds={k: v - earlier.get(k, 0.0) for k, v in progress.stage_seconds.items() if v != earlier.get(k)},
        notes=notes + mode_notes,
        sampler={key: used.get(key, value) for key, value in options.items() if key not in ("device", "seed")},
        models=tuple(used.get("models", ())),
        device=used.get("device", "cpu"),
    )
