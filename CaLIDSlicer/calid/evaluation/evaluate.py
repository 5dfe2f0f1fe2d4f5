"""Held-out-slice evaluation: drop real slices, rebuild them, score only what was dropped.

Protocol for one stack (or every frame of a cine) and upsampling factor k:
keep slices 0, k, 2k, ... (trailing slices are trimmed first so that the last one is
kept, ``(Z - 1) % k == 0``), give that sparse stack (slice spacing x k, same origin and
directions) to :func:`calid.methods.reconstruction.reconstruct` with factor k, and compare the
rebuilt slices with the real ones that were dropped. Intensities of prediction and
truth are divided by the same number, the 99.5th percentile of the sparse input (what
a method sees), so PSNR/SSIM use a data range of 1.

Per volume: PSNR from the mean squared error over all dropped slices; SSIM averaged
over the dropped slices; both again inside the heart box (every label of the case,
all slices and frames, + 10 pixels) when the case has labels, else NaN; in the box also the
contrast ratio (std of each rebuilt slice over the real one's, 1 = as much contrast and
texture as the real slice; see :func:`calid.evaluation.metrics.contrast_ratio`) and the
gradient ratio (mean in-plane gradient magnitude over the real one's, 1 = as sharp; see
:func:`calid.evaluation.metrics.gradient_ratio`). A cine also
gets the temporal consistency error of the dropped slices (wrap-around included).
Dice / HD95 need a segmenter (:mod:`calid.segmentation.inference`) and are left out when there is none.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np

from calid.evaluation import metrics
from calid.evaluation.datasets import Case, LoadedCase, load_case
from calid.errors import InputError
from calid.segmentation.labels import LV, MYO, RV
from calid.progress import Progress, ProgressMode, as_progress
from calid.io.volume import Volume
from calid.methods.autoencoder_roundtrip import METHOD as ROUND_TRIP, round_trip_result

INTENSITY_PERCENTILE = 99.5
HEART_MARGIN = 10
#: Mirror images the Dice/HD95 segmenter averages: 4, as for every Dice reported so far (the labels a
#: reconstruction gets are then as good as the segmenter makes them; `calid segment` defaults to 1 for speed).
EVALUATION_FLIPS = 4
#: Column suffix per ACDC label value.
STRUCTURE_KEYS = {RV: "rv", MYO: "myo", LV: "lv"}


@dataclass(frozen=True)
class HeldOut:
    """A stack cut down to every k-th slice, and the slices it lost."""

    sparse: Volume
    truth: Volume  # the (trimmed) original, (T, Z, Y, X) or (Z, Y, X)
    keep_every: int
    trimmed: int  # trailing slices removed so that the last slice is kept

    @property
    def dropped(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.truth.n_slices) if i % self.keep_every)


@dataclass
class Evaluation:
    """Per-volume rows, per-cine temporal rows, and what a reader must know about them."""

    rows: list[dict] = field(default_factory=list)
    temporal: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)  # one per reconstruction: method, models, sampler, device, stage_seconds


def check_keep_every(keep_every: int) -> int:
    if isinstance(keep_every, bool) or int(keep_every) != keep_every or keep_every < 2:
        raise InputError(f"keep_every must be an integer >= 2, not {keep_every!r}")
    return int(keep_every)


def hold_out(volume: Volume, keep_every: int = 2) -> HeldOut:
    """Keep slices 0, k, 2k, ... after trimming trailing slices so the last one is kept."""
    keep_every = check_keep_every(keep_every)
    trimmed = (volume.n_slices - 1) % keep_every
    usable = volume.n_slices - trimmed
    if usable < keep_every + 1:
        raise InputError(
            f"holding out slices with keep_every={keep_every} needs at least {keep_every + 1} slices, "
            f"not {volume.n_slices}"
        )
    truth = volume.replace(array=volume.array[..., :usable, :, :], synthesized=())
    sx, sy, sz = volume.spacing
    sparse = truth.replace(array=truth.array[..., ::keep_every, :, :], spacing=(sx, sy, sz * keep_every))
    return HeldOut(sparse, truth, int(keep_every), trimmed)


def intensity_scale(sparse: Volume) -> float:
    """The 99.5th percentile of the sparse input (1 when that is not positive)."""
    value = float(np.percentile(sparse.array, INTENSITY_PERCENTILE))
    return value if value > 0 else 1.0


def reconstruct_options(method: str, options: dict) -> dict:
    """The options ``reconstruct`` accepts for ``method`` (diffusion settings only for diffusion)."""
    from calid.methods.reconstruction import BASELINES, PEERS, reconstruct

    accepted = inspect.signature(reconstruct).parameters
    diffusion_only = {"steps", "samples", "guide", "guide_strength", "guide_blend", "guide_detail", "guide_detail_mm", "views", "temperature",
                      "decoding", "temporal_smoothing", "guide_latents", "sharpen", "sharpen_mm", "precision"}
    return {
        name: value
        for name, value in options.items()
        if name in accepted and value is not None and not (method in (*BASELINES, *PEERS) and name in diffusion_only)
        and not (name == "rife_weights" and method not in PEERS)
    }


def _image_scores(pred: np.ndarray, truth: np.ndarray, box) -> dict:
    """PSNR (pooled) and mean SSIM over the dropped slices (Z', Y, X), whole and in the box."""
    scores = {"psnr": metrics.psnr(pred, truth), "ssim": float(np.mean([metrics.ssim(p, t) for p, t in zip(pred, truth)]))}
    if box is None:
        scores.update(psnr_heart=float("nan"), ssim_heart=float("nan"), contrast_heart=float("nan"),
                      gradient_heart=float("nan"))
        return scores
    y0, y1, x0, x1 = box
    pred_box, truth_box = pred[:, y0:y1, x0:x1], truth[:, y0:y1, x0:x1]
    scores["psnr_heart"] = metrics.psnr(pred_box, truth_box)
    scores["contrast_heart"] = metrics.contrast_ratio(pred_box, truth_box)
    scores["gradient_heart"] = metrics.gradient_ratio(pred_box, truth_box)
    fits = min(y1 - y0, x1 - x0) >= metrics.SSIM_WINDOW
    scores["ssim_heart"] = (
        float(np.mean([metrics.ssim(p, t) for p, t in zip(pred_box, truth_box)])) if fits else float("nan")
    )
    return scores


def _segment_scores(pred_labels, true_labels, annotated: dict, spacing_yx) -> dict:
    """Dice pooled over the dropped slices where each structure was contoured, HD95 averaged over them.

    ``annotated``: structure value -> (Z,) mask of the slices where experts contoured it.
    """
    scores = {}
    for value, drawn in annotated.items():
        key = STRUCTURE_KEYS[value]
        if not drawn.any():
            scores[f"dice_{key}"] = scores[f"hd95_{key}"] = float("nan")
            continue
        pred, true = pred_labels[drawn], true_labels[drawn]
        scores[f"dice_{key}"] = metrics.dice(pred, true, value)
        distances = [metrics.hd95(p, t, value, spacing_yx) for p, t in zip(pred, true)]
        finite = [d for d in distances if np.isfinite(d)]
        scores[f"hd95_{key}"] = float(np.mean(finite)) if finite else float("nan")
    return scores


class Segmenter:
    """Labels of reconstructed volumes from the installed segmentation model, loaded once.

    ``note`` says why Dice/HD95 are missing: this version has no :mod:`calid.segmentation.inference`,
    or its model is not installed (then the segmenter switches itself off instead of
    failing every case).
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device or "auto"
        self.note: str | None = None
        self.identity: dict | None = None  # of the loaded network (calid.models.identity), for the report
        self._network = None
        try:
            import calid.segmentation.inference as segment_module
        except ModuleNotFoundError as err:
            if err.name != "calid.segmentation.inference":
                raise
            self._module = None
            self.note = "Dice/HD95 not computed: this version of calid has no segmenter (calid.segmentation.inference)"
        else:
            self._module = segment_module

    @property
    def available(self) -> bool:
        return self._module is not None

    def __call__(self, volume: Volume) -> np.ndarray | None:
        from calid.errors import CalidError

        if self._module is None:
            return None
        try:
            if self._network is None:
                from calid.models.identity import identity_of

                self.device = self._module.resolve_device(self.device)
                self._network, self.name = self._module.load_segmenter(device=self.device)
                self.identity = identity_of(self._network)
            return self._module.segment_array(volume, self._network, device=self.device, flips=EVALUATION_FLIPS)
        except CalidError as err:
            self._module = None
            self.note = f"Dice/HD95 not computed: {err}"
            return None


def _segment_contoured_frames(segmenter, volume: Volume, annotated: dict) -> np.ndarray | None:
    """(T, Z, Y, X) labels of ``volume``, segmenting only the frames with a contour on a dropped slice.

    Frames are segmented independently, so leaving out the others changes no score; Sunnybrook
    cines have contours on 2 frames of about 20, which makes their evaluation ~10x cheaper.
    Frames not segmented hold zeros (they are never scored).
    """
    wanted = [t for t in range(volume.n_frames) if any(mask[t].any() for mask in annotated.values())]
    if not volume.is_cine or len(wanted) == volume.n_frames:
        segmented = segmenter(volume)
        return None if segmented is None else _as_frames(segmented)
    labels = np.zeros(volume.array.shape, np.uint8)
    if not wanted:
        return labels
    times = tuple(volume.frame_times[t] for t in wanted) if volume.frame_times else None
    segmented = segmenter(volume.replace(array=volume.array[wanted], frame_times=times))
    if segmented is None:
        return None
    labels[wanted] = segmented
    return labels


def _as_frames(array: np.ndarray) -> np.ndarray:
    return array if array.ndim == 4 else array[None]


def _every_nth_frame(loaded: LoadedCase, step: int) -> tuple[LoadedCase, list[int]]:
    """The case cut to frames 0, step, 2*step, ... (3D cases are returned as they are)."""
    volume = loaded.volume
    if not volume.is_cine or step == 1:
        return loaded, list(range(volume.n_frames))
    frames = list(range(0, volume.n_frames, step))
    times = tuple(volume.frame_times[t] for t in frames) if volume.frame_times else None
    labels = None if loaded.labels is None else loaded.labels[frames]
    annotated = None if loaded.annotated is None else loaded.annotated[frames]
    cut = volume.replace(array=volume.array[frames], frame_times=times)
    narrowed = {value: mask[frames] for value, mask in loaded.structure_annotated.items()}
    return LoadedCase(loaded.case, cut, labels, annotated, loaded.structures, narrowed), frames


def evaluate_case(
    loaded: LoadedCase,
    methods: list[str],
    keep_every: int = 2,
    frame_step: int = 1,
    options: dict | None = None,
    segmenter: Segmenter | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Rows for one case and every method (see the module docstring for the protocol)."""
    from calid.methods.reconstruction import method_and_mode, reconstruct

    progress = as_progress(progress)
    case = loaded.case
    loaded, frames = _every_nth_frame(loaded, frame_step)
    held = hold_out(loaded.volume, keep_every)
    out = Evaluation()
    if held.trimmed:
        progress.message(f"{case.name}: last {held.trimmed} slice(s) left out so that (Z - 1) is a multiple of {keep_every}")
    dropped = list(held.dropped)
    scale = intensity_scale(held.sparse)
    truth = _as_frames(held.truth.array)[:, dropped].astype(np.float32) / scale
    labels = annotated = box = None
    if loaded.labels is not None and loaded.labels.any():
        box = metrics.heart_box(loaded.labels, HEART_MARGIN)
        labels = _as_frames(loaded.labels)[:, : held.truth.n_slices][:, dropped]
        annotated = {value: loaded.annotation_of(value).reshape(len(frames), -1)[:, : held.truth.n_slices][:, dropped]
                     for value in loaded.structures}
    base = {"case": case.name, "patient": case.patient, "group": case.group, "kind": case.kind,
            "slices": held.truth.n_slices, "trimmed": held.trimmed}
    for method in methods:
        name, mode = method_and_mode(method)
        if name == ROUND_TRIP:  # the real slices through the autoencoder: the decoder's ceiling, not a reconstruction
            result = round_trip_result(held.truth, options or {}, progress)
        else:
            result = reconstruct(held.sparse, factor=keep_every, method=name, mode=mode, progress=progress,
                                 **reconstruct_options(name, options or {}))
        seconds = result.seconds / len(frames)  # the reconstruction alone: no segmentation, no scoring
        pred = _as_frames(result.volume.array)[:, dropped].astype(np.float32) / scale
        pred_labels = None
        run = {"method": method, "models": list(result.models), "sampler": result.sampler, "device": result.device,
               "stage_seconds": dict(result.stage_seconds)}
        if labels is not None and segmenter is not None and segmenter.available:
            segment_started = time.perf_counter()
            segmented = _segment_contoured_frames(segmenter, result.volume, annotated)
            pred_labels = None if segmented is None else segmented[:, dropped]
            if segmented is not None:
                run["stage_seconds"]["segment"] = time.perf_counter() - segment_started
                identity = getattr(segmenter, "identity", None)  # any callable that labels volumes may stand in
                run["models"] += [identity] if identity else []
                run["device"] = result.device if result.models else getattr(segmenter, "device", result.device)
        out.runs.append(run)
        for t, frame in enumerate(frames):
            row = {**base, "frame": frame if case.kind == "cine" else None, "method": method,
                   "seconds": seconds, **_image_scores(pred[t], truth[t], box)}
            if pred_labels is not None:
                row.update(_segment_scores(pred_labels[t], labels[t], {v: a[t] for v, a in annotated.items()},
                                           loaded.volume.spacing[1::-1]))
            out.rows.append(row)
        if case.kind == "cine" and len(frames) > 1:
            out.temporal.append({**base, "method": method, "frames": len(frames),
                                 "temporal_error": metrics.temporal_consistency_error(pred, truth)})
    return out


def check_methods(methods: list[str]) -> None:
    """Refuse an unknown method name before any case is loaded (the message lists every name ``evaluate`` takes)."""
    from calid.methods.reconstruction import BASELINES, MODE_VARIANTS, PEERS

    known = ("auto", "calid", *MODE_VARIANTS, *BASELINES, *PEERS, ROUND_TRIP)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(known)} "
                         f"('{ROUND_TRIP}' scores the autoencoder's round trip of the real slices)")


def _check_peers(methods: list[str], options: dict) -> None:
    """A missing or wrong RIFE weights file fails here, before any case is reconstructed."""
    if "rife" in methods:
        from calid.methods.rife import check_weights

        check_weights(options.get("rife_weights"))


def evaluate(
    cases: list[Case],
    methods: list[str],
    keep_every: int = 2,
    frame_step: int = 1,
    options: dict | None = None,
    progress: Progress | ProgressMode | None = None,
    dice: bool = True,
) -> Evaluation:
    """Evaluate every case with every method; ``options`` go to ``reconstruct`` where accepted.

    ``dice=False`` segments no output (no Dice/HD95), which saves a segmentation per method and case.
    """
    if not cases:
        raise InputError("there are no cases to evaluate; check the folder and the --split")
    if not methods:
        raise InputError("methods must name at least one method, e.g. linear")
    if isinstance(frame_step, bool) or int(frame_step) != frame_step or frame_step < 1:
        raise InputError(f"frame step must be a positive integer, not {frame_step!r}")
    keep_every = check_keep_every(keep_every)
    check_methods(methods)
    _check_peers(methods, options or {})
    progress = as_progress(progress)
    segmenter = Segmenter((options or {}).get("device")) if dice else None
    total = Evaluation(settings={"keep_every": keep_every, "frame_step": frame_step, "methods": list(methods),
                                 "intensity_scale": f"{INTENSITY_PERCENTILE}th percentile of the sparse input",
                                 "heart_margin_px": HEART_MARGIN, **(options or {})})
    with progress.stage("evaluate", len(cases)) as stage:
        for case in cases:
            loaded = load_case(case)
            if loaded.volume.n_slices < keep_every + 1:
                total.notes.append(f"{case.name}: skipped, {loaded.volume.n_slices} slices are too few "
                                   f"to hold any out with keep-every {keep_every}")
            else:
                part = evaluate_case(loaded, methods, keep_every, frame_step, options, segmenter, progress)
                total.rows += part.rows
                total.temporal += part.temporal
                total.runs += part.runs
            stage.advance()
    trimmed = {r["case"] for r in total.rows if r["trimmed"]}
    if trimmed:
        total.notes.append(f"{len(trimmed)} of {len({r['case'] for r in total.rows})} stacks had their last "
                           f"slice(s) left out so that (Z - 1) is a multiple of {keep_every} (column 'trimmed')")
    if segmenter is None:
        total.notes.append("Dice/HD95 not computed: segmentation of the outputs was switched off (--no-dice)")
    elif segmenter.note:
        total.notes.append(segmenter.note)
    return total
