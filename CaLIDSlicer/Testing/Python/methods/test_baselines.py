"""Classical interpolation baselines: shapes, exactness, and that registration moves edges."""

from __future__ import annotations

import numpy as np
import pytest

from calid.methods.baselines import METHODS, interpolate
from calid.errors import InputError
from calid.methods.registration import symmetric_motion


def random_stack(z: int = 4, y: int = 16, x: int = 18, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(500.0, 200.0, size=(z, y, x)).astype(np.float32)


def ramp_along_z(values: np.ndarray, y: int = 3, x: int = 4) -> np.ndarray:
    """A stack whose every pixel follows ``values`` along z."""
    return np.broadcast_to(np.asarray(values, np.float32)[:, None, None], (len(values), y, x)).copy()


def disc(centre_x: float, size: int = 48, radius: float = 8.0) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return (((y - size / 2) ** 2 + (x - centre_x) ** 2) <= radius**2).astype(np.float32)


def centroid_x(image: np.ndarray) -> float:
    return float((image * np.arange(image.shape[1])[None, :]).sum() / image.sum())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", [2, 3])
def test_output_shape_and_dtype(method, factor):
    dense = interpolate(random_stack(), factor, method=method)
    assert dense.shape == (3 * factor + 1, 16, 18)
    assert dense.dtype == np.float32


@pytest.mark.parametrize("method", METHODS)
def test_acquired_slices_are_bit_exact(method):
    stack = random_stack(z=3) * np.float32(np.pi)  # values with full mantissas
    dense = interpolate(stack, 4, method=method, spacing=(1.37, 1.52, 10.0))
    np.testing.assert_array_equal(dense[::4], stack)


@pytest.mark.parametrize("method", METHODS)
def test_integer_input_gives_float32(method):
    stack = np.random.default_rng(3).integers(0, 4000, size=(2, 12, 12)).astype(np.uint16)
    dense = interpolate(stack, 2, method=method)
    assert dense.dtype == np.float32
    np.testing.assert_array_equal(dense[::2], stack.astype(np.float32))


def test_linear_reproduces_a_ramp_along_z():
    stack = ramp_along_z([10.0, 13.0, 16.0, 19.0])
    dense = interpolate(stack, 3, method="linear")
    np.testing.assert_allclose(dense, ramp_along_z(10.0 + np.arange(10)), rtol=1e-6)


def test_linear_blends_by_distance():
    stack = ramp_along_z([0.0, 8.0, 0.0])
    dense = interpolate(stack, 4, method="linear")[:, 0, 0]
    np.testing.assert_allclose(dense, [0, 2, 4, 6, 8, 6, 4, 2, 0], atol=1e-6)


def test_nearest_picks_the_nearest_slice_and_ties_go_down():
    stack = ramp_along_z([1.0, 2.0, 3.0])
    assert interpolate(stack, 4, method="nearest")[:, 0, 0].tolist() == [1, 1, 1, 2, 2, 2, 2, 3, 3]
    assert interpolate(stack, 3, method="nearest")[:, 0, 0].tolist() == [1, 1, 2, 2, 2, 3, 3]


def test_cubic_reproduces_a_ramp_along_z():
    stack = ramp_along_z([-4.0, -1.0, 2.0, 5.0, 8.0])
    dense = interpolate(stack, 4, method="cubic")
    np.testing.assert_allclose(dense, ramp_along_z(-4.0 + 0.75 * np.arange(17)), atol=1e-5)


def test_cubic_follows_curvature_better_than_linear():
    z = np.arange(6.0)
    stack = ramp_along_z(z**2)
    true = (np.arange(21) / 4.0) ** 2
    cubic = interpolate(stack, 4, method="cubic")[:, 0, 0]
    linear = interpolate(stack, 4, method="linear")[:, 0, 0]
    interior = slice(4, 17)  # away from the one-sided end slopes
    assert np.abs(linear - true)[interior].max() == pytest.approx(0.25)  # a quarter at mid-gaps
    assert np.abs(cubic - true)[interior].max() < 0.3 * 0.25
    assert np.abs(cubic - true).max() < np.abs(linear - true).max()


def test_cubic_does_not_overshoot_a_step():
    stack = ramp_along_z([0.0, 0.0, 0.0, 100.0, 100.0, 100.0])
    dense = interpolate(stack, 4, method="cubic")
    assert dense.min() >= 0.0
    assert dense.max() <= 100.0


def test_registration_moves_a_disc_half_way():
    stack = np.stack([disc(21.0), disc(27.0)]) * 200.0
    middle = interpolate(stack, 2, method="registration", spacing=(1.5, 1.5, 10.0))[1]
    linear = interpolate(stack, 2, method="linear")[1]
    truth = disc(24.0) * 200.0
    assert abs(centroid_x(middle) - 24.0) < 1.0
    assert middle.max() > 0.9 * 200.0  # one bright disc, not two half-bright ones
    assert np.abs(middle - truth).mean() < 0.5 * np.abs(linear - truth).mean()


def test_registration_between_identical_slices_copies_them():
    slice_ = random_stack(z=1)[0]
    dense = interpolate(np.stack([slice_, slice_]), 3, method="registration")
    np.testing.assert_allclose(dense, np.broadcast_to(slice_, dense.shape), atol=1e-3)


def test_registration_motion_is_symmetric():
    a, b = disc(21.0, size=32) * 100.0, disc(25.0, size=32) * 100.0
    forward = symmetric_motion(a, b, (1.2, 1.2))
    backward = symmetric_motion(b, a, (1.2, 1.2))
    assert forward.shape == (32, 32, 2)
    np.testing.assert_allclose(forward, -backward, atol=1e-6)
    assert forward[16, 21, 0] > 1.0  # the disc centre moves in +x, in mm


def test_factor_one_returns_a_copy():
    stack = random_stack(z=2)
    for method in METHODS:
        dense = interpolate(stack, 1, method=method)
        np.testing.assert_array_equal(dense, stack)
        dense[0, 0, 0] += 1.0
        assert dense[0, 0, 0] != stack[0, 0, 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="spline"), "method must be one of nearest, linear, cubic, registration, motion, not 'spline'"),
        (dict(factor=0), "factor must be an integer >= 1, not 0"),
        (dict(factor=2.5), "factor must be an integer >= 1, not 2.5"),
        (dict(factor=True), "factor must be an integer >= 1, not True"),
        (dict(stack=np.zeros((1, 4, 4))), "at least 2 slices"),
        (dict(stack=np.zeros((4, 4))), "must be 3D (Z, Y, X), not 2D"),
        (dict(stack=np.zeros((2, 3, 4, 4))), "must be 3D (Z, Y, X), not 4D"),
        (dict(stack=np.array([[["a"]], [["b"]]])), "must hold real numbers"),
        (dict(spacing=(1.0, -1.0, 10.0)), "spacing must be 2 or 3 positive numbers"),
    ],
)
def test_invalid_arguments_raise_input_error(kwargs, message):
    arguments = dict(stack=np.zeros((2, 4, 4), np.float32), factor=2, method="linear") | kwargs
    with pytest.raises(InputError) as error:
        interpolate(**arguments)
    assert message in str(error.value)
