"""Motion guide vs demons: heart-box quality on ACDC validation patients and CPU speed.

``python -m calid.evaluation.motion MODEL_DIR --data DATA/acdc [--threads 2]`` prints
one table: the held-out-slice test of :mod:`calid.evaluation.motion_val` (keep every 2nd
slice, a = 0.5, heart box) for ``registration`` (demons) and ``motion``, and the time
of each for the bench's x4 case (10 slices of 256 x 256: 9 pairs, 27 targets) on the
same slices, interleaved so both see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def bench_stack(data_dir: Path, slices: int = 10, size: int = 256) -> tuple[np.ndarray, tuple[float, float]]:
    """A real ACDC validation volume cut/padded to ``slices`` x ``size`` x ``size`` (edge values)."""
    from calid.evaluation.datasets import find_cases, load_case

    case = next(c for c in find_cases(data_dir, "val") if c.kind == "3d")
    volume = load_case(case).volume
    array = volume.array[:slices].astype(np.float32)
    pad = [(0, 0)] + [(max(0, (size - n) // 2), max(0, size - n - max(0, (size - n) // 2))) for n in array.shape[1:]]
    array = np.pad(array, pad, mode="edge")
    top, left = (array.shape[1] - size) // 2, (array.shape[2] - size) // 2
    array = array[:, top : top + size, left : left + size]
    if array.shape[0] < slices:
        raise ValueError(f"{case.name} has {array.shape[0]} slices, the bench needs {slices}")
    return array, tuple(volume.spacing[:2])


def time_methods(model, stack: np.ndarray, spacing_xy, factor: int = 4, repeats: int = 3,
                 device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per run of demons and of the motion guide over the whole stack, interleaved.

    Keys ``registration`` and ``motion`` hold wall times; ``registration cpu`` and ``motion cpu``
    the process's CPU time in the same runs, which other jobs on a shared machine inflate far less.
    """
    from calid.models.motion import motion_interpolate
    from calid.methods.registration import registration_interpolate

    motion_interpolate(stack[:3], factor, model, device)  # warm-up (first-call allocations)
    times: dict[str, list[float]] = {"registration": [], "motion": [], "registration cpu": [], "motion cpu": []}

    def timed(name: str, run) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        if name == "motion" and device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        times[name].append(time.perf_counter() - wall)
        times[f"{name} cpu"].append(time.process_time() - cpu)

    for _ in range(repeats):
        timed("registration", lambda: registration_interpolate(stack, factor, spacing_xy))
        timed("motion", lambda: motion_interpolate(stack, factor, model, device))
    return times


def main(argv: list[str] | None = None) -> int:
    import SimpleITK as sitk
    import torch

    from calid.models.motion import from_pretrained
    from calid.evaluation.motion_val import demons_scores, load_val_cases, motion_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="motion guide model folder (config.json + model.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="ACDC folder (patientNNN_ED/ES + _gt)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and SimpleITK (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-quality", action="store_true", help="time only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    model = from_pretrained(args.model, args.device)
    print(f"motion guide: {sum(p.numel() for p in model.parameters())} parameters, {model.config}")
    if not args.skip_quality:
        cases = load_val_cases(args.data)
        rows = {"registration": demons_scores(cases), "motion": motion_scores(model, cases, args.device)}
        print(f"\nACDC val, {len(cases)} volumes, keep every 2nd slice, a = 0.5, heart box (mean over volumes)")
        print("| method | PSNR (dB) | SSIM | contrast ratio |\n|---|---|---|---|")
        for name, s in rows.items():
            print(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.3f} | {s['contrast']:.3f} |")
    stack, spacing = bench_stack(args.data)
    times = time_methods(model, stack, spacing, repeats=args.repeats, device=args.device)
    pairs = stack.shape[0] - 1
    print(f"\nx4 on {stack.shape[0]} x {stack.shape[1]} x {stack.shape[2]} ({pairs} pairs, {3 * pairs} targets), "
          f"{args.threads} threads, {args.device}, median of {args.repeats}:")
    print("| method | seconds | per pair (ms) |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {1000 * median / pairs:.1f} |")
    for clock in ("", " cpu"):
        ratio = statistics.median(times["registration" + clock]) / statistics.median(times["motion" + clock])
        print(f"\nmotion is {ratio:.1f}x faster than demons{' in CPU time' if clock else ''} (per-run ratios: "
              f"{', '.join(f'{r / m:.1f}' for r, m in zip(times['registration' + clock], times['motion' + clock]))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
