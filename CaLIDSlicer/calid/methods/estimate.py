"""How long a reconstruction will take, said before it starts, from a small cost model.

Each stage costs (seconds per unit of work) x (units). Units are slices (acquired, gaps,
synthesised or dense) times their pixels relative to 256 x 256, times the diffusion steps,
samples and views where the stage repeats for them. The CPU unit costs are fitted by
:func:`fit_costs` to stage times measured by ``calid bench`` (and a timed segmentation and
start-up) on the project's 2-core CPU: ``docs/results/estimate_cpu.json`` holds the
measurements and a test checks :data:`CPU_COSTS` against them. The CPU a run meets may be
slower, faster or busier than that one: :func:`speed_probe` times a few encoder calls right
before the run and scales every stage by how their time compares with the calibrated encode
cost (on the shared 2-core machine, other jobs made runs 20 times slower, far more than the
load average says, because torch's threads wait for each other). No GPU has been measured
yet, so a CUDA run gets no number, and says so, rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import time

import numpy as np

#: Pixels of one slice that a unit of work stands for.
REFERENCE_PIXELS = 256 * 256

#: Seconds per unit on the project's CPU (2 threads), from docs/results/estimate_cpu.json via fit_costs.
CPU_COSTS: dict[str, float] = {
    "startup": 2.55,
    "io": 0.00605,
    "encode": 0.0733,
    "register_gap": 0.0720,
    "register_slice": 0.0901,
    "sample_3d": 0.0150,
    "sample_2dt": 0.0161,
    "decode": 0.1176,
    "registration_gap": 0.0872,
    "registration_slice": 0.00374,
    "interpolate": 0.000132,
    "segment": 0.0732,  # one pass per slice (flips=1, the default since issue 18.11)
}
#: CPU unit costs under bfloat16 autocast (precision "auto" on an AMX CPU) over the float32 ones above:
#: the network stages in three interleaved bench pairs (docs/results/bench_cpu_precision.md; encode
#: 0.45, sample 0.45, decode 0.47). "register_slice" holds one encoder call (0.0733 of its 0.0901 s)
#: plus the morph, so 0.45 of the first and all of the second. Demons and I/O do not change.
BFLOAT16_CPU_SCALE: dict[str, float] = {"encode": 0.45, "sample_3d": 0.45, "sample_2dt": 0.45, "decode": 0.47,
                                        "register_slice": 0.55}
#: Where each device's unit costs come from; None: not measured yet.
DEVICE_COSTS: dict[str, dict[str, float] | None] = {"cpu": CPU_COSTS, "cuda": None}
#: Cost keys that do not grow with the slice's pixels.
UNSCALED = ("startup",)


#: Workload method of ``calid segment`` alone (no reconstruction: factor 1, the segment stage only).
SEGMENT_ONLY = "segment"


@dataclass(frozen=True)
class Workload:
    """What one run does, in the terms the cost model counts."""

    frames: int
    slices: int
    height: int
    width: int
    factor: int
    method: str = "calid"
    mode: str = "3d"
    steps: int = 2
    samples: int = 1
    views: int = 1
    guide: str = "registration"
    guide_latents: str = "encode"
    segment: bool = False
    flips: int = 1  # mirror images the segmenter averages per slice (each one a full pass)
    precision: str = "float32"  # the networks' arithmetic, resolved ("float32" or "bfloat16")

    @property
    def gaps(self) -> int:
        return self.frames * max(self.slices - 1, 0)

    @property
    def synthesized(self) -> int:
        return self.gaps * max(self.factor - 1, 0)

    @property
    def dense(self) -> int:
        return self.frames * (max(self.slices - 1, 0) * self.factor + 1)


def stage_units(work: Workload) -> dict[str, dict[str, float]]:
    """stage name (as the engine's progress names it) -> {cost key: units}; pixel scaling not applied yet."""
    stages: dict[str, dict[str, float]] = {}
    if work.synthesized:
        if work.method == "calid":
            stages["encode"] = {"encode": work.frames * work.slices}
            if work.guide == "registration":
                stages["register"] = {"register_gap": work.gaps, "register_slice": work.synthesized}
                if work.guide_latents == "warp":  # the same morph without encoding its image (latent warp: negligible)
                    stages["register"]["encode"] = -work.synthesized
            elif work.guide == "motion":  # the network's own time is not calibrated yet: its images' encoding only
                stages["motion guide"] = {"encode": work.synthesized}
            stages["sample"] = {f"sample_{work.mode}": work.synthesized * work.steps * work.samples * work.views}
            stages["decode"] = {"decode": work.synthesized * work.samples}
        elif work.method == "registration":
            stages["interpolate (registration)"] = {"registration_gap": work.gaps, "registration_slice": work.synthesized}
        else:
            stages[f"interpolate ({work.method})"] = {"interpolate": work.dense}
    if work.segment:
        stages["segment"] = {"segment": work.dense * work.flips}
    stages["read and write"] = {"io": work.dense}
    stages["start"] = {"startup": 1.0}
    return stages


def _scaled_units(work: Workload) -> dict[str, dict[str, float]]:
    scale = work.height * work.width / REFERENCE_PIXELS
    return {stage: {key: units * (1.0 if key in UNSCALED else scale) for key, units in keys.items()}
            for stage, keys in stage_units(work).items()}


@dataclass
class Estimate:
    """Seconds per stage on ``device``; ``stages`` is empty when that device has not been measured."""

    device: str
    stages: dict[str, float] = field(default_factory=dict)
    work: Workload | None = None
    busy: float = 1.0  # this CPU now vs the calibration (speed_probe), already in ``stages``
    probed: bool = False  # whether ``busy`` was measured on this CPU (else the calibrated costs stand)

    @property
    def measured(self) -> bool:
        return bool(self.stages)

    @property
    def seconds(self) -> float | None:
        return sum(self.stages.values()) if self.stages else None

    def text(self) -> str:
        """One line for people, e.g. 'about 6 min on this CPU (...)'."""
        what = ""
        if self.work is not None:
            work = self.work
            cine = f"{work.frames} frames x " if work.frames > 1 else ""
            mode = ", 2D+T" if work.method == "calid" and work.mode == "2dt" else ""
            what = f"{work.method}{mode} x{work.factor}, {cine}{work.slices} slices of {work.height} x {work.width}"
            if work.method == SEGMENT_ONLY:
                mirrors = f", {work.flips} mirror images" if work.flips > 1 else ""
                what = f"segmentation{mirrors}, {cine}{work.slices} slices of {work.height} x {work.width}"
        if not self.measured:
            return (f"no time estimate on {self.device.upper()}: GPU stage times not measured yet "
                    f"(run 'calid bench --device cuda'); {what}")
        main = sorted(((s, v) for s, v in self.stages.items() if s not in ("start", "read and write")),
                      key=lambda item: -item[1])[:4]
        parts = ", ".join(f"{stage} {format_duration(seconds, about=False)}" for stage, seconds in main)
        busy = ""
        if self.busy >= 1.2 or self.busy <= 0.8:
            busy = f"; this CPU runs x{self.busy:.1f} the measured times now ({'busy or slower' if self.busy > 1 else 'faster'})"
        where = "on this CPU" if self.probed else "on the 2-core CPU it was measured on (this one not timed yet)"
        return f"{format_duration(self.seconds)} {where} ({what}{'; ' + parts if parts else ''}{busy})"

    def as_event(self) -> dict:
        """The JSON progress line the Slicer panel reads."""
        return {"event": "estimate", "device": self.device, "seconds": self.seconds, "busy": round(self.busy, 4),
                "stages": {k: round(v, 3) for k, v in self.stages.items()}, "text": self.text()}


def estimate(work: Workload, device: str = "cpu", costs: dict[str, float] | None = None, busy: float | None = None) -> Estimate:
    """Seconds per stage of ``work`` on ``device`` ("cpu" or "cuda"; a resolved device, not "auto").

    ``busy`` (this CPU's :func:`speed_probe`; None: not timed) scales every stage alike. A
    bfloat16 workload on the CPU uses the float32 costs times :data:`BFLOAT16_CPU_SCALE`.
    """
    table = costs if costs is not None else DEVICE_COSTS.get(device)
    if table is None:
        return Estimate(device=device, work=work)
    if device == "cpu" and work.precision == "bfloat16":
        table = {key: cost * BFLOAT16_CPU_SCALE.get(key, 1.0) for key, cost in table.items()}
    factor = 1.0 if busy is None else busy
    stages = {stage: factor * sum(table[key] * units for key, units in keys.items())
              for stage, keys in _scaled_units(work).items()}
    return Estimate(device=device, stages=stages, work=work, busy=factor, probed=busy is not None)


#: Slices of 256 x 256 the probe encodes (about 0.3 s on the calibration CPU when it is idle).
PROBE_SLICES = 4
#: Clamp of the probe's factor: a single odd timing must not make the estimate absurd.
PROBE_RANGE = (0.1, 100.0)


def speed_probe(mode: str = "3d", model: str | None = None) -> float | None:
    """How many times the calibrated CPU costs this CPU needs right now (None where it cannot tell).

    Encodes :data:`PROBE_SLICES` blank slices with the autoencoder the run will load anyway
    (cached, so the run does not load it twice) after one warm-up call, and divides the time by
    the calibrated encode cost. Other processes, fewer cores or a faster chip all show up in it.
    """
    try:
        import torch

        from calid.methods.calid_fill import _model_dir, load_models

        _, autoencoder = load_models(_model_dir(model, mode).resolve(), "cpu")
        images = torch.zeros(PROBE_SLICES, 1, 256, 256)
        with torch.no_grad():
            autoencoder.encode(images[:1])
            started = time.perf_counter()
            autoencoder.encode(images)
            seconds = time.perf_counter() - started
    except (ImportError, OSError, RuntimeError):  # no torch or no model: no probe, the calibrated costs stand
        return None
    low, high = PROBE_RANGE
    return min(high, max(low, seconds / (CPU_COSTS["encode"] * PROBE_SLICES)))


def format_duration(seconds: float, about: bool = True) -> str:
    """'about 40 s', 'about 6 min', 'about 1.5 h' (rounded: an estimate is not a measurement)."""
    prefix = "about " if about else ""
    if seconds < 60:
        value = max(1, round(seconds)) if seconds < 20 else 5 * round(seconds / 5)
        return f"{prefix}{value} s"
    if seconds < 90 * 60:
        return f"{prefix}{max(1, round(seconds / 60))} min"
    return f"{prefix}{seconds / 3600:.1f} h"


def fit_costs(rows: list[dict]) -> dict[str, float]:
    """Unit costs (least squares, never negative) from measured rows.

    Each row is ``{"workload": {Workload fields}, "seconds": {stage: seconds}}``; a stage's
    seconds are explained by the cost keys :func:`stage_units` gives it, with the pixel
    scaling applied. A key no row measures is left out.
    """
    equations: dict[tuple[str, ...], list[tuple[list[float], float]]] = {}
    for row in rows:
        units = _scaled_units(Workload(**row["workload"]))
        for stage, seconds in row["seconds"].items():
            if stage not in units:
                continue
            keys = tuple(sorted(units[stage]))
            equations.setdefault(keys, []).append(([units[stage][k] for k in keys], float(seconds)))
    costs: dict[str, float] = {}
    for keys, items in equations.items():
        matrix = np.array([u for u, _ in items], float)
        target = np.array([s for _, s in items], float)
        solution = np.linalg.lstsq(matrix, target, rcond=None)[0]
        if (solution < 0).any():  # refit the keys that stay positive (a cost cannot be negative)
            keep = solution > 0
            solution = np.zeros(len(keys))
            solution[keep] = np.linalg.lstsq(matrix[:, keep], target, rcond=None)[0].clip(min=0)
        costs.update({key: float(value) for key, value in zip(keys, solution)})
    return costs


def estimate_device(device: str) -> str:
    """The device a run would use ("auto": CUDA when torch sees a GPU), without failing when torch is missing."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def workload_for(shape: tuple[int, ...], slice_spacing: float, *, factor: int | None = None, spacing: float | None = None,
                 method: str = "auto", mode: str = "auto", steps: int | None = None, samples: int | None = None,
                 views: int | None = None, guide: str | None = None, segment: bool = False,
                 model: str | None = None, guide_latents: str | None = None, precision: str | None = None,
                 device: str = "cpu") -> Workload:
    """The :class:`Workload` of ``calid.reconstruct`` on an input of ``shape`` ((T,) Z, Y, X), resolved as the engine resolves it.

    ``device`` is the resolved device the networks will run on; it decides what precision "auto" means.
    """
    from types import SimpleNamespace

    from calid.methods.calid_settings import DEFAULT_GUIDE, DEFAULT_GUIDE_LATENTS, DEFAULT_VIEWS
    from calid.methods.reconstruction import DEFAULT_SAMPLES, DEFAULT_STEPS, resolve_factor, resolve_method, resolve_mode

    frames, slices, height, width = _as_cine_shape(shape)
    header = SimpleNamespace(slice_spacing=slice_spacing, is_cine=len(shape) == 4)  # what the resolvers read
    factor = resolve_factor(header, factor, spacing)
    method, _ = resolve_method(method, model)
    mode, _ = resolve_mode(mode, method, header, model)
    return Workload(frames=frames, slices=slices, height=height, width=width, factor=factor, method=method, mode=mode,
                    steps=steps or DEFAULT_STEPS, samples=samples or DEFAULT_SAMPLES, views=views or DEFAULT_VIEWS,
                    guide=guide or DEFAULT_GUIDE, guide_latents=guide_latents or DEFAULT_GUIDE_LATENTS, segment=segment,
                    precision=_resolved_precision(precision, device))


def _resolved_precision(precision: str | None, device: str) -> str:
    """What ``precision`` (None: the default) becomes on ``device``; float32 where torch is not importable."""
    from calid.methods.calid_settings import DEFAULT_PRECISION, check_precision

    precision = precision or DEFAULT_PRECISION
    check_precision(precision)  # also where torch is missing
    try:
        from calid.methods.precision import resolve_precision

        return resolve_precision(precision, device)
    except ImportError:
        return "float32" if precision == "auto" else precision


def segment_workload(shape: tuple[int, ...], flips: int = 1) -> Workload:
    """The :class:`Workload` of ``calid segment`` on an input of ``shape`` ((T,) Z, Y, X): every slice, ``flips`` passes each."""
    frames, slices, height, width = _as_cine_shape(shape)
    return Workload(frames=frames, slices=slices, height=height, width=width, factor=1, method=SEGMENT_ONLY,
                    segment=True, flips=flips)


def _as_cine_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(T, Z, Y, X) of a ((T,) Z, Y, X) shape: a 3D stack is one frame."""
    return (1, *shape) if len(shape) == 3 else tuple(shape)
