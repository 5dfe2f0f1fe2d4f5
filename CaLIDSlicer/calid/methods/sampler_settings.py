"""What a sampler run is asked to do (steps, samples, order, views, guided start), checked without loading torch.

The CLI and the calid method's settings check their options against these before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass

ORDERS = ("parallel", "autoregressive")
#: In-plane views of the latents a prediction can be averaged over (flips of width / height, then
#: transposes): the first ``views`` of these. The denoisers are trained on every flip and quarter
#: turn, so each view is an equally good estimate and their mean is a cheap ensemble.
VIEWS = ((False, False, False), (False, True, False), (True, False, False), (True, True, False),
         (False, False, True), (False, True, True), (True, False, True), (True, True, True))  # (flip h, flip w, transpose)
#: How many of VIEWS a prediction may be averaged over.
VIEW_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 10
    samples: int = 1
    eta: float = 0.0
    temperature: float = 1.0
    chunk: int = 32
    order: str = "parallel"
    strength: float = 1.0  # where a guided start enters the noise schedule (1: pure noise, no guide used)
    views: int = 1  # flips/transposes each prediction is averaged over (see VIEWS)

    def __post_init__(self) -> None:
        for name in ("steps", "samples", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.eta < 0 or self.temperature < 0:
            raise ValueError(f"eta and temperature must be >= 0, not {self.eta} and {self.temperature}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {self.order!r}")
        if not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], not {self.strength!r}")
        if self.views not in VIEW_COUNTS:
            raise ValueError(f"views must be one of {', '.join(map(str, VIEW_COUNTS))}, not {self.views!r}")



def schedule_stride(total: int, steps: int, strength: float = 1.0) -> tuple[int, int]:
    """(span, stride) of a trailing schedule of ``steps`` over ``strength`` of ``total`` timesteps; ValueError if unusable."""
    span = round(strength * total)
    if not 0 < strength <= 1 or span < 1:
        raise ValueError(f"strength must be in (0, 1], not {strength!r}")
    if steps > span:
        raise ValueError(f"steps must be at most {span} (strength {strength:g} of {total} timesteps), not {steps}")
    ratio = span // steps
    if total // (total // ratio) != ratio:
        raise ValueError(f"{steps} steps from strength {strength:g} make strides of {ratio} timesteps, which the "
                         f"scheduler cannot take; choose other steps (e.g. 1, 2 or 4 for strength 0.5)")
    return span, ratio

