"""``calid train motion``: self-supervised training of the learned motion guide.

Each step draws triplets (:mod:`calid.train.motion_data`), rebuilds the middle slice from
the outer two and penalises Charbonnier + (1 - SSIM) against the real one (inside the
real, un-padded pixels), plus a warping loss that asks each pair flow alone to carry one
acquired slice onto the other, and MONAI's bending energy on the pair flows. Checkpoints
(safetensors + JSON) are written every few minutes and the model with the best
validation heart-box PSNR (ACDC val, :mod:`calid.evaluation.motion_val`) is exported to
``RUN/best`` as a model folder, and every validated state to ``RUN/validated/step-N``.
Stop it at any time; ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from calid.models.motion import MotionNet
from calid.train.motion_data import TripletBatch


@dataclass(frozen=True)
class MotionLossWeights:
    ssim: float = 1.0
    warp: float = 0.2
    bending: float = 0.1


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 7) -> torch.Tensor:
    """Per-pixel SSIM (B, 1, H, W) over a uniform ``window`` (average pooling: its backward is
    cheap on a CPU, where an 11 x 11 Gaussian convolution's took most of a training step)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1, padding=window // 2, count_include_pad=False)

    mu_x, mu_y = mean(x), mean(y)
    sxx = mean(x * x) - mu_x * mu_x
    syy = mean(y * y) - mu_y * mu_y
    sxy = mean(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (values * valid).sum() / valid.sum().clamp_min(1.0)


def motion_loss(model: MotionNet, batch: TripletBatch, weights: MotionLossWeights) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts for one batch."""
    from monai.losses import BendingEnergyLoss

    flows = model.pair_flows(batch.prev, batch.next)
    out = model.targets(batch.prev, batch.next, flows, batch.a)
    valid = batch.valid
    charb = _masked_mean(torch.sqrt((out["image"] - batch.target) ** 2 + 1e-6), valid)
    ssim = _masked_mean(ssim_map(out["image"], batch.target), valid)
    size = batch.prev.shape[-2:]
    full = model.downscale * F.interpolate(flows, size=size, mode="bilinear", align_corners=False)
    warp_loss = 0.5 * (_masked_mean((model.warp(batch.next, full[:, :2]) - batch.prev).abs(), valid)
                       + _masked_mean((model.warp(batch.prev, full[:, 2:]) - batch.next).abs(), valid))
    bending = BendingEnergyLoss()(torch.cat(flows.chunk(2, 1), 0))  # F01 and F10 as two DDFs
    total = charb + weights.ssim * (1 - ssim) + weights.warp * warp_loss + weights.bending * bending
    return total, {"charb": float(charb), "ssim": float(ssim), "warp": float(warp_loss), "bend": float(bending)}


def _learning_rate(step: int, steps: int, peak: float, warmup: int = 300) -> float:
    """Linear warm-up, then cosine down to 5 % of the peak at ``steps``."""
    import math

    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def export_model(model: MotionNet, directory: Path, card_lines: list[str]) -> None:
    from calid.models.format import ModelConfig, save_model

    config = ModelConfig(name="calid-motion-acdc", version="0.1.0", kind="motion", architecture="calid-motion",
                         kwargs=dict(model.config))
    card = "# calid-motion-acdc (training run)\n\n" + "\n".join(card_lines) + "\n"
    save_model(model, config, directory, card, overwrite=True)


def init_from(model: MotionNet, source: Path) -> int:
    """Copy every tensor of a model folder or run checkpoint whose name and shape match; the count copied."""
    from calid.train.warm_start import trained_tensors

    tensors = trained_tensors(source)
    own = model.state_dict()
    matching = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return len(matching)


def keep_validated(model: MotionNet, out: Path, step: int, card: list[str], improved: bool) -> Path:
    """Export a validated state to ``out/validated/step-N`` (and to ``out/best`` if ``improved``).

    Every validated state is kept (2.5 MB each): the best on PSNR is not always the one to ship.
    """
    folder = out / "validated" / f"step-{step:06d}"
    export_model(model, folder, card)
    if improved:
        export_model(model, out / "best", card)
    return folder


def run_motion(args: argparse.Namespace, device: torch.device) -> None:
    """Train until ``args.steps`` (or until stopped), checkpointing and validating on the way."""
    from calid.train.checkpoint import load_checkpoint, save_checkpoint
    from calid.train.data import cached_stacks
    from calid.train.motion_data import TripletSampler, split_stacks
    from calid.evaluation.motion_val import demons_scores, load_val_cases, motion_scores

    out: Path = args.out
    if args.crop % 64:
        raise ValueError(f"--crop must be a multiple of 64 for the motion guide (e.g. 128), not {args.crop}")
    if not float(getattr(args, "ssim_weight", 1.0)) >= 0:
        raise ValueError(f"--ssim-weight must be a number >= 0 (e.g. 1.0), not {args.ssim_weight}")
    val_minutes = float(getattr(args, "val_minutes", 6.0))
    checkpoint_minutes = float(getattr(args, "checkpoint_minutes", 3.0))
    model_kwargs = json.loads(getattr(args, "model_config", None) or "{}")
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "log.jsonl").open("a")

    def note(entry: dict) -> None:
        entry = {**entry, "time": time.strftime("%H:%M:%S")}
        log.write(json.dumps(entry) + "\n")
        log.flush()
        print(json.dumps(entry), flush=True)

    volumes, cines = [], []
    for folder in args.data:
        v, c = split_stacks(cached_stacks([str(folder)], "train", args.cache_dir))
        volumes += v
        cines += c
    val_folder = next((Path(d) for d in args.data if any(Path(d).glob("patient*_ED_gt.nii.gz"))), None)
    val_cases = load_val_cases(val_folder) if val_folder is not None else []
    demons = demons_scores(val_cases, out / "val_demons.json") if val_cases else {}
    note({"event": "data", "volumes": len(volumes), "cine_frames": len(cines), "val_cases": len(val_cases),
          "demons": demons})

    torch.manual_seed(args.seed)
    model = MotionNet(**model_kwargs).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    info = load_checkpoint(out, model, optimizer) if args.resume else None
    if info is None and getattr(args, "init", None) is not None:
        note({"event": "init", "from": str(args.init), "tensors": init_from(model, Path(args.init))})
    step = int(info["step"]) if info else 0
    best = float(info.get("best_psnr", -1e9)) if info else -1e9
    sampler = TripletSampler(volumes, cines, crop=args.crop, seed=args.seed + step)
    weights = MotionLossWeights(ssim=float(getattr(args, "ssim_weight", 1.0)))
    note({"event": "start", "step": step, "params": sum(p.numel() for p in model.parameters()), "best": best,
          "loss_weights": vars(weights), "lr": args.lr, "steps": args.steps})

    last_save = last_val = time.monotonic()
    running: dict[str, float] = {}
    started = time.monotonic()
    while step < args.steps:
        batch = sampler.batch(args.batch)
        batch = TripletBatch(*(t.to(device) for t in (batch.prev, batch.next, batch.target, batch.a, batch.valid)))
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, args.steps, args.lr)
        loss, parts = motion_loss(model, batch, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        for key, value in {"loss": float(loss), **parts}.items():
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        if step % 50 == 0:
            note({"step": step, **{k: round(v, 4) for k, v in running.items()},
                  "s_per_step": round((time.monotonic() - started) / 50, 3)})
            started = time.monotonic()
        now = time.monotonic()
        validate = val_cases and (now - last_val > val_minutes * 60 or step == args.steps)
        if validate:
            model.eval()
            scores = motion_scores(model, val_cases, device)
            model.train()
            improved = scores["psnr"] > best
            card = [f"MotionNet {model.config}, step {step}, batch {args.batch}, crop {args.crop}, "
                    f"trained on the 'train' split of {', '.join(map(str, args.data))}.",
                    f"ACDC val (keep every 2nd slice, a = 0.5, heart box): PSNR {scores['psnr']:.2f} dB, "
                    f"SSIM {scores['ssim']:.3f}, contrast {scores['contrast']:.3f}; demons {demons}."]
            if improved:
                best = scores["psnr"]
            keep_validated(model.cpu(), out, step, card, improved)
            model.to(device)
            note({"event": "val", "step": step, **{k: round(v, 4) for k, v in scores.items()},
                  "best": round(best, 4), "improved": improved})
            last_val = time.monotonic()
        if now - last_save > checkpoint_minutes * 60 or step == args.steps or validate:
            save_checkpoint(out, model, optimizer, {"step": step, "best_psnr": best, "config": model.config})
            last_save = time.monotonic()
    note({"event": "done", "step": step, "best": best})


def export_checkpoint(run_dir: Path, directory: Path) -> int:
    """Write a run's latest checkpoint (not its best-on-validation) as a model folder; its step."""
    import json as _json

    from calid.train.checkpoint import load_checkpoint

    state = _json.loads((Path(run_dir) / "checkpoint.json").read_text())
    model = MotionNet(**state["config"])
    info = load_checkpoint(Path(run_dir), model, None)
    export_model(model.eval(), Path(directory), [f"MotionNet {model.config}, checkpoint of {run_dir} at step {info['step']}."])
    return int(info["step"])
