"""DICOM folders: slices ordered by position on the normal (not SliceLocation), frames by TriggerTime."""

from __future__ import annotations

import random

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import oblique_direction

from calid import io
from calid.errors import InputError, InputFileError

SLICES, FRAMES, SLICE_GAP = 4, 3, 8.0
ORIGIN = np.array([10.0, -20.0, 30.0])


def write_dicom(path, pixels, position, direction, *, trigger_time=None, slice_location=0.0,
                instance=1, series="1.2.826.0.1.3680043.2.1125.1"):
    image = sitk.GetImageFromArray(pixels[np.newaxis])
    image.SetDirection(np.asarray(direction).flatten().tolist())
    image.SetSpacing((1.5, 1.6, SLICE_GAP))
    image.SetOrigin(tuple(float(v) for v in position))
    tags = {"0020|000e": series, "0008|0060": "MR", "0020|0013": str(instance), "0020|1041": str(slice_location)}
    if trigger_time is not None:
        tags["0018|1060"] = f"{trigger_time:.2f}"
    for key, value in tags.items():
        image.SetMetaData(key, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(image)


@pytest.fixture
def cine_truth():
    return np.random.default_rng(3).integers(0, 1000, (FRAMES, SLICES, 6, 5)).astype(np.int16)


def write_cine_folder(folder, truth, *, positions=None, direction=None):
    """One file per (frame, slice), shuffled names, deliberately wrong SliceLocation."""
    direction = oblique_direction() if direction is None else direction
    if positions is None:
        positions = [ORIGIN + z * SLICE_GAP * direction[:, 2] for z in range(truth.shape[1])]
    jobs = [(t, z) for t in range(truth.shape[0]) for z in range(truth.shape[1])]
    random.Random(5).shuffle(jobs)
    for n, (t, z) in enumerate(jobs):
        write_dicom(folder / f"IM{n:04d}.dcm", truth[t, z], positions[z], direction,
                    trigger_time=35.0 * t + 0.5 * z, slice_location=(7 * z) % 5 - 3.0, instance=n + 1)
    return folder


def test_cine_folder_gives_slices_frames_and_geometry(tmp_path, cine_truth):
    volume = io.read(write_cine_folder(tmp_path, cine_truth))
    assert volume.is_cine and volume.array.shape == cine_truth.shape
    np.testing.assert_array_equal(volume.array, cine_truth)  # slice order and frame order
    np.testing.assert_allclose(volume.spacing, (1.5, 1.6, SLICE_GAP), atol=1e-4)
    np.testing.assert_allclose(volume.origin, ORIGIN, atol=1e-4)
    np.testing.assert_allclose(volume.direction, oblique_direction(), atol=1e-5)
    np.testing.assert_allclose(volume.frame_times, [0.75, 35.75, 70.75], atol=1e-6)  # median over slices


def test_reversed_normal_still_orders_slices_along_the_normal(tmp_path, cine_truth):
    """Slices acquired apex-to-base along -normal come out ordered by position along +normal."""
    direction = oblique_direction()
    positions = [ORIGIN - z * SLICE_GAP * direction[:, 2] for z in range(SLICES)]
    volume = io.read(write_cine_folder(tmp_path, cine_truth, positions=positions))
    np.testing.assert_array_equal(volume.array, cine_truth[:, ::-1])
    np.testing.assert_allclose(volume.origin, positions[-1], atol=1e-4)


def test_single_frame_folder_is_a_3d_stack(tmp_path, cine_truth):
    write_cine_folder(tmp_path, cine_truth[:1])
    volume = io.read(tmp_path)
    assert not volume.is_cine
    np.testing.assert_array_equal(volume.array, cine_truth[0])


def test_uneven_slice_gaps_are_refused_naming_the_slices(tmp_path, cine_truth):
    direction = oblique_direction()
    gaps = [0.0, 8.0, 16.0, 30.0]
    positions = [ORIGIN + g * direction[:, 2] for g in gaps]
    with pytest.raises(InputError, match=r"between slices 2 and 3 .*8\.00, 8\.00, 14\.00"):
        io.read(write_cine_folder(tmp_path, cine_truth, positions=positions))


def test_slices_drifting_off_the_normal_are_refused(tmp_path, cine_truth):
    direction = oblique_direction()
    positions = [ORIGIN + z * SLICE_GAP * direction[:, 2] + z * 2.0 * direction[:, 0] for z in range(SLICES)]
    with pytest.raises(InputError, match=r"slice 3 drifts 6\.00 mm"):
        io.read(write_cine_folder(tmp_path, cine_truth, positions=positions))


def test_missing_frame_is_refused(tmp_path, cine_truth):
    write_cine_folder(tmp_path, cine_truth)
    victim = next(p for p in sorted(tmp_path.iterdir()))
    victim.unlink()
    with pytest.raises(InputError, match="same number of cine frames"):
        io.read(tmp_path)


def test_mixed_orientations_are_refused(tmp_path, cine_truth):
    write_cine_folder(tmp_path, cine_truth)
    write_dicom(tmp_path / "localiser.dcm", cine_truth[0, 0], ORIGIN, np.eye(3), trigger_time=0.0,
                series="1.2.826.0.1.3680043.2.1125.2")
    with pytest.raises(InputError, match="one short-axis stack"):
        io.read(tmp_path)


def test_folder_without_dicom_is_an_input_file_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputFileError, match="no DICOM images"):
        io.read(tmp_path)
