"""Side-by-side timings of reconstruction methods on the same inputs (``calid bench``).

Each case is a phantom written to a temporary file, so a run times what a user pays:
read, reconstruct (split into the method's own stages), write. Every method gets one
warm-up run (model loading, caches) and then ``repeats`` timed runs; the median is
reported with the peak memory of the process during the timed runs.

``pixel-diffusion`` is a bench-only, UNTRAINED comparator (calid.methods.pixel_diffusion): the
calid denoiser and sampler on image slices instead of latents, timed at the same steps so
the latent-vs-pixel speed ratio can be measured; its images are never evaluated.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from calid.methods.pixel_diffusion import LABEL as PIXEL_LABEL
from calid.methods.pixel_diffusion import METHOD as PIXEL_METHOD
from calid.methods.pixel_diffusion import NOTE as PIXEL_NOTE

#: Methods that take the diffusion sampler's steps.
DIFFUSION_METHODS = ("calid", "calid-3d", "calid-2dt", PIXEL_METHOD)
#: name -> (phantom parameters, factor): the cases the issue tracker names.
CASES = {
    "3d": ({"n_slices": 10, "n_frames": 1, "as_3d": True}, 4),
    "cine": ({"n_slices": 12, "n_frames": 20}, 2),
    # a 5-frame cut of the large study (512 x 512 x 30 slices x 50 frames): the engine's rounds hold the same
    # number of latent pixels at 5 or 50 frames, so its peak GPU memory bounds the full study's (plus latents)
    "large": ({"n_slices": 30, "n_frames": 5, "size": (512, 512), "pixel_spacing": 0.7, "slice_spacing": 8.0}, 2),
}
#: How inputs are read and outputs written: "file" (NIfTI through calid.io, SimpleITK) or "npy"
#: (numpy arrays, geometry kept in memory: for a machine without SimpleITK, e.g. a lent GPU).
IO_MODES = ("file", "npy")


@dataclass
class BenchRow:
    case: str
    method: str
    device: str
    repeats: int
    shape_in: list[int]
    shape_out: list[int]
    median_seconds: dict[str, float] = field(default_factory=dict)
    peak_host_mib: float = 0.0
    peak_gpu_mib: float | None = None
    steps: int | None = None
    note: str = ""


def _reset_peak_host() -> None:
    """Reset the kernel's peak-RSS counter for this process (Linux); harmless elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_host_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cuda(device: str):
    import torch

    return torch.cuda if device == "cuda" and torch.cuda.is_available() else None


def _npy_io(geometry):
    """read/write of arrays as .npy, the geometry of ``geometry`` (a Volume) kept in memory."""
    import dataclasses

    import numpy as np

    def read(path: Path):
        return dataclasses.replace(geometry, array=np.load(path))

    def write(volume, path: Path) -> Path:
        np.save(path, volume.array)
        return path

    return read, write


def _one_run(source: Path, target: Path, factor: int, method: str, device: str, extra: dict, io=None,
             segment: bool = False) -> dict[str, float]:
    from calid.progress import Progress
    from calid.methods.reconstruction import method_and_mode, reconstruct

    if io is None:
        from calid.io.read_write import read, write
    else:
        read, write = io
    times: dict[str, float] = {}
    start = time.perf_counter()
    volume = read(source)
    times["read"] = time.perf_counter() - start
    progress = Progress("none")
    start = time.perf_counter()
    if method == PIXEL_METHOD:
        from calid.methods.pixel_diffusion import reconstruct_pixels

        dense = reconstruct_pixels(volume, factor, progress, device=device, **extra)
    else:
        name, mode = method_and_mode(method)
        kwargs = {"device": device, **extra} if name == "calid" else {}
        dense = reconstruct(volume, factor=factor, method=name, mode=mode, progress=progress, **kwargs).volume
    cuda = _cuda(device)
    if cuda is not None:
        cuda.synchronize()
    times.update(progress.stage_seconds)
    times["reconstruct"] = time.perf_counter() - start
    start = time.perf_counter()
    write(dense, target)
    times["write"] = time.perf_counter() - start
    times["total"] = times["read"] + times["reconstruct"] + times["write"]
    if segment:  # what `calid segment` pays on the dense output (model loading included), outside "total"
        from calid.segmentation.inference import segment as segment_volume

        times["segment"] = segment_volume(dense, device=device, progress=Progress("none")).seconds
    return times


def case_volume(case: str, size: int | None = None, frames: int | None = None):
    """(phantom volume, factor) of a bench case (``size``, ``frames``: instead of the case's)."""
    from calid.phantom.generator import make_phantom

    params, factor = CASES[case]
    if size is not None:
        params = {**params, "size": (size, size)}
    if frames is not None and params["n_frames"] > 1:
        params = {**params, "n_frames": frames}
    return make_phantom(**params).image, factor


def bench_case(case: str, method: str, folder: Path, *, repeats: int = 3, device: str = "auto",
               extra: dict | None = None, io: str = "file", size: int | None = None, frames: int | None = None) -> BenchRow:
    """Median stage times and peak memory of ``method`` on one case (``size``, ``frames``: instead of the case's)."""
    volume, factor = case_volume(case, size, frames)
    return bench_volume(case, volume, factor, method, folder, repeats=repeats, device=device, extra=extra, io=io)


def bench_volume(case: str, volume, factor: int, method: str, folder: Path, *, repeats: int = 3,
                 device: str = "auto", extra: dict | None = None, io: str = "file", segment: bool = False) -> BenchRow:
    """Median stage times and peak memory of ``method`` on ``volume`` (written to ``folder`` first)."""
    from calid.methods.reconstruction import DEFAULT_STEPS

    if io not in IO_MODES:
        raise ValueError(f"io must be one of {', '.join(IO_MODES)}, not {io!r}")
    if io == "npy":
        reader_writer = _npy_io(volume)
        source = reader_writer[1](volume, folder / f"{case}.npy")
        target = folder / f"{case}_{method}.npy"
    else:
        from calid.io.read_write import write

        reader_writer = None
        source = write(volume, folder / f"{case}.nii.gz")
        target = folder / f"{case}_{method}.nii.gz"
    if device == "auto":
        from calid.methods.calid_settings import resolve_device

        device = resolve_device("auto")
    extra = {"steps": DEFAULT_STEPS, **(extra or {})} if method in DIFFUSION_METHODS else {}
    if method == PIXEL_METHOD:  # the comparator takes the sampler's steps, seed and precision only
        extra = {key: extra[key] for key in ("steps", "seed", "precision") if key in extra}
    _one_run(source, target, factor, method, device, extra, reader_writer, segment)  # warm-up
    cuda = _cuda(device)
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    _reset_peak_host()
    runs = [_one_run(source, target, factor, method, device, extra, reader_writer, segment) for _ in range(repeats)]
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    shape_out = list(volume.array.shape)
    shape_out[-3] = (shape_out[-3] - 1) * factor + 1
    return BenchRow(
        case=case, method=method, device=device, repeats=repeats,
        shape_in=list(volume.array.shape), shape_out=shape_out,
        median_seconds={k: round(v, 4) for k, v in medians.items()},
        peak_host_mib=round(_peak_host_mib(), 1),
        peak_gpu_mib=round(cuda.max_memory_allocated() / 2**20, 1) if cuda is not None else None,
        steps=extra.get("steps"), note=PIXEL_NOTE if method == PIXEL_METHOD else "",
    )


def input_case(path: Path, frames: int | None = None):
    """(case name, volume) from a real image file; a cine keeps only its first ``frames`` frames."""
    from calid.errors import InputError
    from calid.io.read_write import read

    volume = read(path)
    if frames is not None:
        if not volume.is_cine:
            raise InputError(f"--frames needs a cine input; {path} is a 3D stack")
        frames = min(frames, volume.n_frames)
        times = volume.frame_times[:frames] if volume.frame_times is not None else None
        volume = volume.replace(array=volume.array[:frames], frame_times=times)
    return Path(path).name.split(".")[0], volume


def run_bench(cases: list[str], methods: list[str], *, repeats: int = 3, device: str = "auto",
              extra: dict | None = None, on_row=None, io: str = "file", size: int | None = None,
              frames: int | None = None, inputs: list[tuple[str, object, int]] = (),
              segment: bool = False) -> list[BenchRow]:
    """Every method on every phantom case (``size``, ``frames``: instead of the case's) and every (name, volume, factor) in ``inputs``."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="calid-bench-") as tmp:
        work = [(case, *case_volume(case, size, frames)) for case in cases] + list(inputs)
        for case, volume, factor in work:
            for method in methods:
                row = bench_volume(case, volume, factor, method, Path(tmp), repeats=repeats, device=device,
                                   extra=extra, io=io, segment=segment)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def markdown_table(rows: list[BenchRow]) -> str:
    lines = ["| case | method | device | read | method stages | write | total (median s) | peak host MiB | peak GPU MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        t = row.median_seconds
        stages = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k not in ("read", "write", "total", "reconstruct"))
        gpu = "-" if row.peak_gpu_mib is None else f"{row.peak_gpu_mib:.0f}"
        method = PIXEL_LABEL if row.method == PIXEL_METHOD else row.method
        lines.append(f"| {row.case} {'x'.join(map(str, row.shape_in))} | {method} | {row.device} | "
                     f"{t['read']:.2f} | {stages} | {t['write']:.2f} | **{t['total']:.2f}** | "
                     f"{row.peak_host_mib:.0f} | {gpu} |")
    return "\n".join(lines)


def speed_ratios(rows: list[BenchRow]) -> list[dict]:
    """pixel-diffusion / calid median seconds (total and "sample" stage) per case, where both ran at equal steps."""
    ratios = []
    for pixel in (row for row in rows if row.method == PIXEL_METHOD):
        for calid in (row for row in rows if row.method == "calid" and row.case == pixel.case):
            if calid.steps != pixel.steps or calid.device != pixel.device:
                continue
            ratios.append({
                "case": pixel.case, "steps": pixel.steps, "device": pixel.device,
                "total_ratio": round(pixel.median_seconds["total"] / calid.median_seconds["total"], 2),
                "sample_ratio": round(pixel.median_seconds["sample"] / calid.median_seconds["sample"], 2),
                "note": PIXEL_NOTE,
            })
    return ratios


def ratio_lines(ratios: list[dict]) -> str:
    return "\n".join(
        f"{r['case']}, {r['steps']} steps, {r['device']}: {PIXEL_LABEL} / calid = {r['total_ratio']:.2f}x total, "
        f"{r['sample_ratio']:.2f}x sample stage"
        for r in ratios
    )


def segment_lines(rows: list[BenchRow]) -> str:
    """Segmentation time over reconstruction time per row (the bar: at most 1/3)."""
    return "\n".join(
        f"{row.case}, {row.method}, {row.device}: segment {row.median_seconds['segment']:.2f} s / reconstruct "
        f"{row.median_seconds['reconstruct']:.2f} s = {row.median_seconds['segment'] / row.median_seconds['reconstruct']:.2f}"
        for row in rows if "segment" in row.median_seconds
    )


def rows_as_dicts(rows: list[BenchRow]) -> list[dict]:
    return [asdict(row) for row in rows]


def cpu_stages(methods: list[str], extra: dict | None, io: str) -> dict[str, str]:
    """Which timed stages run on the CPU whatever --device says (so a GPU row is read for what it is)."""
    from calid.methods.calid_settings import DEFAULT_GUIDE

    stages = {"read, write": "NIfTI through SimpleITK" if io == "file" else ".npy through numpy (no NIfTI on the device)",
              "encode, decode": "intensity normalisation in, denormalisation and the output type out, in numpy"}
    if "calid" in methods and (extra or {}).get("guide", DEFAULT_GUIDE) == "registration":
        stages["register"] = "demons registration of neighbouring slices (SimpleITK, CPU only until a GPU motion guide exists)"
    if "registration" in methods:
        stages["interpolate (registration)"] = "SimpleITK demons, CPU only"
    return stages
