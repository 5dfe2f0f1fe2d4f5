"""Training of the slice segmenter on ACDC ED/ES stacks and their expert labels.

    python -m calid.train.segmenter --data ../shared/data/acdc --out runs/segmenter [--steps N] [--resume]

Only patients of the 'train' split (:mod:`calid.evaluation.splits`) are trained on; after each
checkpoint the mean Dice on the 'val' patients is logged and the best network so far
is written to ``OUT/best`` as a model directory. Slices are resampled to the
network's pixel size and normalised once, into a cache (``--cache-dir``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from calid.segmentation.labels import CARDIAC_STRUCTURES
from calid.evaluation.metrics import dice
from calid.segmentation.inference import normalised_frame, segment_array, to_model_grid
from calid.evaluation.splits import Split

#: The bundled segmenter's shape: about 1.6 M parameters, 16x downsampling, 1.5 mm pixels, 128-pixel windows.
SEGMENTER_KWARGS = {
    "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2, "pixel_size": 1.5, "window": 128,
}

Pair = tuple[np.ndarray, np.ndarray]  # (Z, y, x) float16 image, (Z, y, x) uint8 labels on the model grid


def labelled_cases(data_dir: Path, split: Split):
    """ACDC 3D cases of ``split`` that have expert labels, loaded (image + labels + geometry)."""
    from calid.evaluation.datasets import find_cases, load_case

    return [load_case(case) for case in find_cases(data_dir, split) if case.kind == "3d" and case.label_path]


def model_grid_pairs(data_dir: Path, split: Split, pixel_size: float, cache_dir: Path) -> list[Pair]:
    """Image/label slices of ``split`` on the model grid, from the cache or built into it once."""
    cache = cache_dir / f"acdc-{split}-{pixel_size:g}mm.npz"
    if not cache.is_file():
        arrays = {}
        for index, loaded in enumerate(labelled_cases(data_dir, split)):
            volume, spacing_xy = loaded.volume, loaded.volume.spacing[:2]
            image = to_model_grid(normalised_frame(volume.array, volume.acquired), spacing_xy, pixel_size)
            arrays[f"image{index:04d}"] = image.astype(np.float16)
            arrays[f"labels{index:04d}"] = to_model_grid(loaded.labels, spacing_xy, pixel_size, labels=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".part.npz")
        np.savez(partial, **arrays)
        partial.replace(cache)
    with np.load(cache) as data:
        count = sum(key.startswith("image") for key in data.files)
        return [(data[f"image{i:04d}"], data[f"labels{i:04d}"]) for i in range(count)]


def crop_corner(labels: np.ndarray, crop: int, generator: torch.Generator, heart_share: float = 0.8) -> tuple[int, int]:
    """Top-left corner of a crop: mostly around the labelled heart (jittered), sometimes anywhere."""

    def uniform(high: int) -> int:
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

    height, width = labels.shape
    ys, xs = np.nonzero(labels)
    if len(ys) and float(torch.rand((), generator=generator)) < heart_share:
        jitter = crop // 4
        top = int(ys.mean()) - crop // 2 + uniform(2 * jitter) - jitter
        left = int(xs.mean()) - crop // 2 + uniform(2 * jitter) - jitter
        return int(np.clip(top, 0, max(height - crop, 0))), int(np.clip(left, 0, max(width - crop, 0)))
    return uniform(height - crop), uniform(width - crop)


def crop_pair(image: np.ndarray, labels: np.ndarray, crop: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    top, left = crop_corner(labels, crop, generator)
    window = (slice(top, top + crop), slice(left, left + crop))
    patch = torch.zeros(2, crop, crop)
    height, width = image[window].shape
    patch[0, :height, :width] = torch.from_numpy(image[window].astype(np.float32))
    patch[1, :height, :width] = torch.from_numpy(labels[window].astype(np.float32))
    return patch[0], patch[1]


def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample rotation (any angle), mirror, zoom 0.85-1.2, gamma, contrast and noise.

    Any in-plane orientation is plausible for short-axis views from other scanners,
    and zoom covers hearts of different sizes at the fixed pixel size.
    """
    count = images.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape or (count,), generator=generator)

    angle, zoom = uniform(0, 2 * math.pi), uniform(0.85, 1.2)
    mirror = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = mirror * torch.cos(angle) / zoom, -torch.sin(angle) / zoom
    theta[:, 1, 0], theta[:, 1, 1] = mirror * torch.sin(angle) / zoom, torch.cos(angle) / zoom
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    images = torch.nn.functional.grid_sample(images, grid, mode="bilinear", align_corners=False)
    labels = torch.nn.functional.grid_sample(labels, grid, mode="nearest", align_corners=False)
    gamma = uniform(0.7, 1.5)[:, None, None, None]
    contrast = uniform(0.85, 1.15)[:, None, None, None]
    noise = uniform(0.0, 0.05)[:, None, None, None] * torch.randn(images.shape, generator=generator)
    images = (images.clamp_min(0) ** gamma) * contrast + noise
    return images, labels


def draw_batch(pairs: list[Pair], batch: int, crop: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, 1, crop, crop) images and labels: random slices of random stacks, augmented."""
    images, labels = [], []
    for _ in range(batch):
        image, label = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
        index = int(torch.randint(image.shape[0], (1,), generator=generator))
        patch, target = crop_pair(image[index], label[index], crop, generator)
        images.append(patch)
        labels.append(target)
    return augment(torch.stack(images)[:, None], torch.stack(labels)[:, None], generator)


def validation_dice(network: torch.nn.Module, cases) -> dict[str, float]:
    """Mean 3D Dice per structure over whole validation stacks, through the inference path (one pass, no flips)."""
    scores: dict[str, list[float]] = {item.name: [] for item in CARDIAC_STRUCTURES}
    for loaded in cases:
        predicted = segment_array(loaded.volume, network, average_flips=False)
        for item in CARDIAC_STRUCTURES:
            scores[item.name].append(dice(predicted, loaded.labels, item.value))
    return {name: round(float(np.nanmean(values)), 4) for name, values in scores.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m calid.train.segmenter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="ACDC folder (patientNNN_ED.nii.gz + _gt)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, best model, final model")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "calid" / "seg")
    parser.add_argument("--kwargs", type=json.loads, default=SEGMENTER_KWARGS, help="network kwargs as JSON")
    parser.add_argument("--resume", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from monai.losses import DiceCELoss

    from calid.models.segmenter import SliceSegmenter
    from calid.train.distributed import setup
    from calid.train.loop import LoopSettings, train
    from calid.models.format import ModelConfig, save_model

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    kwargs = {**args.kwargs, "window": args.crop}  # inference windows are the size of the training crops
    network = SliceSegmenter(**kwargs)
    pairs = model_grid_pairs(args.data, "train", network.pixel_size, args.cache_dir)
    val_cases = labelled_cases(args.data, "val")
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    config = ModelConfig("calid-segmenter-acdc", "0.1.0", "segmenter", "calid-segmenter", kwargs=kwargs)
    best_file = args.out / "best.json"  # survives --resume, so a worse network never replaces the best
    best = json.loads(best_file.read_text()) if args.resume and best_file.is_file() else {"mean": -1.0, "step": None}
    started = time.perf_counter()

    def loss_of(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        loss = loss_function(net(batch[0]), batch[1].long())
        return loss, {}

    def report(step: int) -> None:
        network.eval()
        scores = validation_dice(network, val_cases)
        network.train()
        mean = float(np.mean(list(scores.values())))
        if mean > best["mean"]:
            best.update(mean=mean, step=step)
            card = f"# calid-segmenter-acdc (best so far)\n\nstep {step}, val Dice {json.dumps(scores)}\n"
            save_model(network, config, args.out / "best", card, overwrite=True)
            best_file.write_text(json.dumps({**best, "val_dice": scores}))
        minutes = round((time.perf_counter() - started) / 60, 1)
        print(json.dumps({"step": step, "val_dice": scores, "best_step": best["step"], "minutes": minutes}), flush=True)

    settings = LoopSettings(steps=args.steps, learning_rate=args.lr, warmup=100,
                            checkpoint_every=args.checkpoint_every, log_every=50)
    batches = lambda generator: draw_batch(pairs, args.batch, args.crop, generator)  # noqa: E731
    train(network, batches, loss_of, settings, setup("cpu"), args.out, args.seed, resume=args.resume, on_checkpoint=report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
