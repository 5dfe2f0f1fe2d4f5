"""Smooth the synthesised slices of a cine along time, so that a played cine does not flicker.

The sampler and the guide draw every frame's missing slices from that frame's neighbours; what
they get wrong differs from frame to frame, while the heart moves smoothly over the 20-35 frames
of a heartbeat. A narrow Gaussian along time (5 % of the heartbeat: 1.5 of 30 frames) removes that flicker and keeps the
motion. Only synthesised slices are touched: the acquired ones are measured data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calid.methods.output_dtype import to_output_dtype


def smooth_in_time(out: np.ndarray, targets: Sequence[int], sigma_frames: float) -> None:
    """Smooth ``out[:, targets]`` (T, Z, Y, X) along T in place with a Gaussian of ``sigma_frames``, wrapping around.

    The heartbeat is periodic, so the last frame's neighbour is the first (as in
    :func:`calid.evaluation.metrics.temporal_consistency_error`). No-op for one frame or sigma 0.
    """
    from scipy.ndimage import gaussian_filter1d

    if sigma_frames <= 0 or out.shape[0] < 2 or not len(targets):
        return
    columns = list(targets)
    block = out[:, columns].astype(np.float32)
    out[:, columns] = to_output_dtype(gaussian_filter1d(block, float(sigma_frames), axis=0, mode="wrap"), out.dtype)
