"""NIfTI time axis: read and written exactly in its unit (s, ms, us); an unknown unit is left as it was (issue 18.3)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from calid.io import read_write as io

#: nibabel unit name -> (calid's Volume.time_unit, NIfTI code, ms per unit)
UNITS = {"sec": ("s", 8, 1000.0), "msec": ("ms", 16, 1.0), "usec": ("us", 24, 0.001)}


def _nifti_4d(path, step: float, units: str, offset: float = 0.0, frames: int = 5) -> None:
    image = nib.Nifti1Image(np.arange(4 * 3 * 2 * frames, dtype=np.int16).reshape(4, 3, 2, frames), np.eye(4))
    image.header.set_xyzt_units("mm", units)
    image.header["pixdim"][4] = step
    image.header["toffset"] = offset
    nib.save(image, str(path))


def _time_header(path) -> tuple[int, float, float]:
    header = nib.load(str(path)).header
    return int(header["xyzt_units"]) & 0x38, float(header["pixdim"][4]), float(header["toffset"])


@pytest.mark.parametrize("units", list(UNITS))
@pytest.mark.parametrize(("step", "offset"), [(1.0, 0.0), (0.03, 0.0), (30.0, 2.5)])
@pytest.mark.parametrize("name", ["x.nii", "x.nii.gz"])
def test_known_time_units_are_read_and_written_exactly(tmp_path, units, step, offset, name):
    source = tmp_path / f"in{name[1:]}"
    _nifti_4d(source, step, units, offset)
    unit, code, unit_ms = UNITS[units]
    volume = io.read(source)
    assert volume.time_unit == unit
    np.testing.assert_allclose(volume.frame_times, [(offset + t * step) * unit_ms for t in range(5)], rtol=1e-6)
    target = io.write(volume, tmp_path / name)
    written_code, written_step, written_offset = _time_header(target)
    assert written_code == code
    assert written_step == pytest.approx(step, rel=1e-6) and written_offset == pytest.approx(offset, rel=1e-6)
    np.testing.assert_array_equal(io.read(target).array, volume.array)
    np.testing.assert_allclose(io.read(target).frame_times, volume.frame_times, rtol=1e-6)


def test_one_second_per_frame_is_one_second_not_one_millisecond(tmp_path):
    """The reported bug: 'sec' with pixdim[4] = 1 was read as 0..4 ms and written back as 0.001 s."""
    _nifti_4d(tmp_path / "in.nii.gz", 1.0, "sec")
    volume = io.read(tmp_path / "in.nii.gz")
    assert volume.frame_times == (0.0, 1000.0, 2000.0, 3000.0, 4000.0)
    assert _time_header(io.write(volume, tmp_path / "out.nii.gz")) == (8, 1.0, 0.0)


@pytest.mark.parametrize(("step", "offset"), [(1.0, 0.0), (30.0, 4.0)])
def test_an_unknown_time_unit_is_left_as_it_was(tmp_path, step, offset):
    _nifti_4d(tmp_path / "in.nii.gz", step, "unknown", offset)
    volume = io.read(tmp_path / "in.nii.gz")
    assert volume.time_unit == "unknown"
    assert volume.frame_times == tuple(offset + t * step for t in range(5))  # the file's numbers, unit unknown
    assert _time_header(io.write(volume, tmp_path / "out.nii.gz")) == (0, step, offset)
    assert io.read(tmp_path / "out.nii.gz").frame_times == volume.frame_times


def test_a_cine_made_in_memory_is_written_in_seconds(tmp_path, oblique_cine):
    assert oblique_cine.time_unit is None  # frame times in ms, no file unit to keep
    assert _time_header(io.write(oblique_cine, tmp_path / "out.nii.gz")) == (8, pytest.approx(0.04), 0.0)


def test_a_zero_step_gives_no_frame_times(tmp_path):
    _nifti_4d(tmp_path / "in.nii.gz", 0.0, "sec")
    assert io.read(tmp_path / "in.nii.gz").frame_times is None


@pytest.mark.data
@pytest.mark.parametrize(("relative", "unit", "times"), [
    ("acdc_cine/patient001_4d.nii.gz", "s", tuple(1000.0 * t for t in range(30))),  # the header says 1 s per frame
    ("sunnybrook/SCD0000101_4d.nii.gz", "unknown", tuple(float(t) for t in range(20))),  # no unit: step 1 as it was
])
def test_real_cines_round_trip_their_time_axis(shared_data, tmp_path, relative, unit, times):
    source = shared_data / relative
    volume = io.read(source)
    assert volume.time_unit == unit and volume.frame_times == times
    target = io.write(volume, tmp_path / "out.nii.gz")
    assert _time_header(target) == _time_header(source)
    back = io.read(target)
    assert back.frame_times == volume.frame_times and back.time_unit == unit
    np.testing.assert_array_equal(back.array, volume.array)
