"""The time estimate ``calid reconstruct`` gives before it starts (single study and cohort).

The same CLI arguments that steer the run resolve the estimate's workload, so the Slicer
panel (which builds these arguments too) and the CLI say the same thing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calid.methods.estimate import Estimate, estimate, estimate_device, format_duration, speed_probe, workload_for
from calid.progress import Progress

#: Stages that run once per sample/decode round (calid_fill.gap_chunks).
ROUND_STAGES = ("register", "sample", "decode")
#: Estimate entries that are not progress stages (the bar covers the work only).
NOT_STAGES = ("start", "read and write")
#: Image pixels per latent pixel of the bundled autoencoder (4 x 4 downsampling).
LATENT_DOWNSAMPLING = 16


#: Methods whose run is long enough that a speed probe (a second or so) is worth it.
PROBED = ("calid", "registration")


def estimate_for_args(args: argparse.Namespace, shape: tuple[int, ...], slice_spacing: float,
                      probe: bool = True) -> Estimate:
    """The estimate of ``calid reconstruct`` with ``args`` on an input of ``shape`` ((T,) Z, Y, X).

    ``probe``: time this CPU now (:func:`speed_probe`) for CPU runs of the slow methods; without
    it (the Slicer panel, which must not load models into Slicer) the calibrated costs stand.
    """
    device = estimate_device(args.device)
    work = workload_for(tuple(shape), slice_spacing, factor=args.factor or (None if args.spacing else 2),
                        spacing=args.spacing, method=args.method, mode=args.mode, steps=args.steps,
                        samples=args.samples, views=args.views, guide=args.guide,
                        guide_latents=getattr(args, "guide_latents", None),
                        segment=getattr(args, "segment", None) is not None,
                        precision=getattr(args, "precision", None), device=device)
    slow = work.method in PROBED or work.segment
    busy = speed_probe(work.mode, getattr(args, "model", None)) if probe and device == "cpu" and slow else None
    return estimate(work, device, busy=busy)


def rounds(est: Estimate) -> int:
    """How many sample/decode rounds the engine will run (it bounds memory per round)."""
    from calid.methods.calid_fill import gap_chunks

    work = est.work
    if work is None or not work.synthesized:
        return 1
    latent_pixels = max(1, work.height * work.width // LATENT_DOWNSAMPLING)
    return max(1, len(gap_chunks(max(work.slices - 1, 1), work.frames, work.factor, latent_pixels)))


def progress_for(mode: str, est: Estimate) -> Progress:
    """A Progress whose one overall bar is weighted by the estimate's stages."""
    plan = {stage: seconds for stage, seconds in est.stages.items() if stage not in NOT_STAGES}
    count = rounds(est)
    return Progress(mode, plan=plan, repeats={stage: count for stage in ROUND_STAGES})


def header_shape(path: Path) -> tuple[tuple[int, ...], float]:
    """((T,) Z, Y, X) and slice spacing from a file's header (the whole file only when the header cannot say)."""
    try:
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        if reader.GetNumberOfComponents() == 1 and len(size) in (3, 4):
            return tuple(reversed(size)), float(reader.GetSpacing()[2])
    except Exception:  # noqa: BLE001 - any format SimpleITK cannot read cheaply is read in full below
        pass
    from calid.io.read_write import read

    volume = read(path)
    return volume.array.shape, volume.slice_spacing


def cohort_estimate_line(args: argparse.Namespace, sources: list[Path]) -> str:
    """One line: the estimated time of all ``sources`` (the cases this shard will run)."""
    total, failed, slow, work = 0.0, [], False, None
    for source in sources:
        try:
            est = estimate_for_args(args, *header_shape(source), probe=False)
        except Exception as err:  # noqa: BLE001 - the case itself will report its error when it runs
            failed.append(f"{source.name} ({err})")
            continue
        if not est.measured:
            return f"estimate: {est.text()}"
        total += est.seconds
        work = est.work
        slow = slow or work.method in PROBED or work.segment
    busy = speed_probe(work.mode) if slow and work is not None else None  # once for the whole cohort
    where = "on this CPU" if busy is not None else "on the 2-core CPU it was measured on"
    line = f"estimate: {format_duration(total * (busy or 1.0))} {where} for {len(sources) - len(failed)} case(s)"
    if failed:
        line += f"; not estimated: {', '.join(failed[:3])}{' ...' if len(failed) > 3 else ''}"
    return line
