"""calid.io.validate: every refusal fires, and its message says what is wrong and how to fix it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from calid.errors import InputError, OutputError
from calid.io.validate import (
    GIB,
    check_fits_in_memory,
    check_output_path,
    check_slice_positions,
    estimate_bytes,
    validate_volume,
)
from calid.io.volume import Volume


def test_a_good_stack_and_cine_pass(oblique_stack, oblique_cine):
    validate_volume(oblique_stack)
    validate_volume(oblique_cine)


def test_single_slice_is_refused(oblique_stack):
    with pytest.raises(InputError, match=r"at least 2 slices to interpolate between, not 1; give the whole"):
        validate_volume(oblique_stack.replace(array=oblique_stack.array[:1]))


def test_min_slices_is_respected(oblique_stack):
    with pytest.raises(InputError, match=r"at least 8 slices.*not 6"):
        validate_volume(oblique_stack, min_slices=8)


def test_single_2d_image_read_as_one_slice_is_refused():
    image = Volume(np.random.default_rng(0).random((1, 32, 32)).astype(np.float32))
    with pytest.raises(InputError, match="not a single image"):
        validate_volume(image)


def test_line_shaped_slices_are_refused():
    with pytest.raises(InputError, match=r"stack of 2D short-axis slices, not slices of shape \(1, 40\)"):
        validate_volume(Volume(np.arange(120, dtype=np.float32).reshape(3, 1, 40)))


def test_nan_and_inf_are_counted_and_located(oblique_cine):
    array = oblique_cine.array.copy()
    array[2, 3, 4, 5] = np.nan
    array[1, 0, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"2 NaN/Inf voxel\(s\) \(in slice\(s\) \[0, 3\]; first at \(t, z, y, x\) = \(1, 0, 0, 0\)\)"):
        validate_volume(oblique_cine.replace(array=array))


def test_constant_image_is_refused(oblique_stack):
    with pytest.raises(InputError, match=r"constant \(every voxel is 42\); check that the right series"):
        validate_volume(oblique_stack.replace(array=np.full(oblique_stack.array.shape, 42, np.int16)))


def _positions(gaps_mm, normal=(0.0, 0.6, 0.8), sideways=None):
    normal = np.asarray(normal)
    along = np.concatenate([[0.0], np.cumsum(gaps_mm)])
    positions = np.outer(along, normal) + np.array([5.0, -3.0, 2.0])
    if sideways is not None:
        positions += np.outer(sideways, [1.0, 0.0, 0.0])
    return positions, normal


def test_even_positions_along_the_normal_pass():
    positions, normal = _positions([10.0, 10.0, 10.0])
    check_slice_positions(positions, normal, 10.0)
    check_slice_positions(positions[::-1], normal, 10.0)  # descending order is fine


def test_uneven_gap_names_the_slices_and_the_gaps():
    positions, normal = _positions([10.0, 10.0, 20.0, 10.0])
    with pytest.raises(InputError, match=r"not 20\.00 mm between slices 2 and 3 where 10\.00 mm is expected "
                                         r"\(gaps measured: 10\.00, 10\.00, 20\.00, 10\.00 mm\); a slice may be missing"):
        check_slice_positions(positions, normal, 10.0)


def test_drift_off_the_normal_says_how_far():
    positions, normal = _positions([10.0, 10.0, 10.0], sideways=[0.0, 0.0, 0.0, 1.5])
    with pytest.raises(InputError, match=r"slice 3 drifts 1\.50 mm sideways"):
        check_slice_positions(positions, normal, 10.0)


def test_memory_estimate_counts_output_latents_working_frames_and_uncertainty():
    # 2 frames x (4 - 1) * 3 + 1 = 10 slices x 8 x 8 int16 output, 1 byte of latents per acquired voxel,
    # two float32 frames of the dense grid; several samples add a float32 uncertainty map
    voxels, acquired, frame = 2 * 10 * 8 * 8, 2 * 4 * 8 * 8, 10 * 8 * 8
    assert estimate_bytes((2, 4, 8, 8), np.int16, 3) == voxels * 2 + acquired + 2 * 4 * frame
    assert estimate_bytes((2, 4, 8, 8), np.int16, 3, samples=4) == voxels * 6 + acquired + 2 * 4 * frame


def test_memory_check_refuses_with_numbers_and_remedies():
    # 30 frames x 45 dense slices x 256 x 256 float32 = 0.33 GiB, + latents and working frames = 0.37 GiB
    with pytest.raises(InputError, match=r"needs ~0\.4 GiB, 0\.2 GiB available; use a smaller factor, reconstruct fewer frames at a time, or crop"):
        check_fits_in_memory((30, 12, 256, 256), np.float32, 4, available=GIB // 4)


def test_memory_check_passes_when_it_fits():
    assert check_fits_in_memory((4, 8, 8), np.float32, 2, available=GIB) == 7 * 8 * 8 * 4 + 4 * 8 * 8 + 2 * 4 * 7 * 8 * 8


def test_memory_check_reads_available_memory_on_linux():
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo here")
    with pytest.raises(InputError, match="GiB available"):
        check_fits_in_memory((10_000, 100, 1000, 1000), np.float64, 8)


def test_output_equal_to_input_is_refused(tmp_path):
    source = tmp_path / "in.nii.gz"
    source.write_bytes(b"x")
    with pytest.raises(OutputError, match="must differ from the input"):
        check_output_path(source, tmp_path / "." / "in.nii.gz")


def test_output_symlinked_to_input_is_refused(tmp_path):
    source = tmp_path / "in.nii.gz"
    source.write_bytes(b"x")
    (tmp_path / "link.nii.gz").symlink_to(source)
    with pytest.raises(OutputError, match="must differ from the input"):
        check_output_path(source, tmp_path / "link.nii.gz")


def test_missing_output_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"does not exist; create it"):
        check_output_path(None, tmp_path / "absent" / "out.nii.gz")


def test_read_only_output_folder_is_refused(tmp_path, monkeypatch):
    # chmod does not stop root, so ask the permission check itself to say "no"
    monkeypatch.setattr("calid.io.validate.os.access", lambda path, mode: False)
    with pytest.raises(OutputError, match="is not writable; choose a folder you can write to"):
        check_output_path(None, tmp_path / "out.nii.gz")


def test_good_output_path_is_returned(tmp_path):
    assert check_output_path(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz") == tmp_path / "out.nii.gz"
