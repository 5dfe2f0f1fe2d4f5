"""calid.io.read_write: round trips keep voxels and geometry, writes are atomic, bad files fail clearly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from calid import io
from calid.errors import InputFileError, OutputError
from calid.io.volume import Volume

FORMATS_3D = ["x.nii", "x.nii.gz", "x.nrrd", "x.mha"]
FORMATS_CINE = ["x.nii", "x.nii.gz", "x.seq.nrrd"]
# NIfTI stores its affine as float32: geometry survives to float32 precision there.
GEOMETRY_ATOL = 1e-4


def assert_same_volume(read: Volume, written: Volume) -> None:
    assert read.array.dtype == written.array.dtype
    np.testing.assert_array_equal(read.array, written.array)
    np.testing.assert_allclose(read.spacing, written.spacing, atol=GEOMETRY_ATOL)
    np.testing.assert_allclose(read.origin, written.origin, atol=GEOMETRY_ATOL)
    np.testing.assert_allclose(read.direction, written.direction, atol=GEOMETRY_ATOL)


@pytest.mark.parametrize("name", FORMATS_3D)
def test_3d_round_trip_keeps_voxels_dtype_and_oblique_geometry(tmp_path, oblique_stack, name):
    back = io.read(io.write(oblique_stack, tmp_path / name))
    assert not back.is_cine
    assert_same_volume(back, oblique_stack)


@pytest.mark.parametrize("name", FORMATS_CINE)
def test_cine_round_trip_keeps_frames_and_frame_times(tmp_path, oblique_cine, name):
    back = io.read(io.write(oblique_cine, tmp_path / name))
    assert back.is_cine
    assert_same_volume(back, oblique_cine)
    np.testing.assert_allclose(back.frame_times, oblique_cine.frame_times, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("name", ["x.nii.gz", "x.nrrd", "x.seq.nrrd"])
def test_integer_and_float_dtypes_are_kept_as_written(tmp_path, oblique_stack, dtype, name):
    volume = oblique_stack.replace(array=(oblique_stack.array % 200).astype(dtype))
    assert io.read(io.write(volume, tmp_path / name)).array.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", ["x.nrrd", "x.mha", "x.seq.nrrd"])
def test_synthesized_indices_survive_round_trip(tmp_path, oblique_stack, name):
    volume = oblique_stack.replace(synthesized=(1, 3, 5))
    assert io.read(io.write(volume, tmp_path / name)).synthesized == (1, 3, 5)


def test_synthesized_indices_are_a_readable_nrrd_key(tmp_path, oblique_stack):
    path = io.write(oblique_stack.replace(synthesized=(1, 3, 5)), tmp_path / "x.nrrd")
    assert b"calid_synthesized_slices:=1,3,5" in path.read_bytes()[:2000]


def test_irregular_frame_times_survive_in_seq_nrrd(tmp_path, oblique_cine):
    cine = oblique_cine.replace(frame_times=(0.0, 33.5, 80.25, 131.0))
    assert io.read(io.write(cine, tmp_path / "x.seq.nrrd")).frame_times == cine.frame_times


def test_irregular_frame_times_in_nifti_warn(tmp_path, oblique_cine):
    cine = oblique_cine.replace(frame_times=(0.0, 33.5, 80.25, 131.0))
    with pytest.warns(UserWarning, match="seq.nrrd"):
        io.write(cine, tmp_path / "x.nii.gz")


def _nifti_4d(path, step: float, units: str) -> None:
    import nibabel as nib

    image = nib.Nifti1Image(np.zeros((4, 3, 2, 5), np.int16), np.eye(4))
    image.header.set_xyzt_units("mm", units)
    image.header["pixdim"][4] = step
    nib.save(image, str(path))


@pytest.mark.parametrize(
    ("step", "units", "expected"),
    [
        (0.03, "sec", (0.0, 30.0, 60.0, 90.0, 120.0)),
        (30.0, "msec", (0.0, 30.0, 60.0, 90.0, 120.0)),
        (30.0, "unknown", (0.0, 1.0, 2.0, 3.0, 4.0)),  # no unit: nothing is known
        (1.0, "sec", (0.0, 1.0, 2.0, 3.0, 4.0)),  # placeholder step (ACDC cine)
        (0.0, "sec", (0.0, 1.0, 2.0, 3.0, 4.0)),
    ],
)
def test_nifti_frame_times_are_ms_from_the_header_units(tmp_path, step, units, expected):
    path = tmp_path / "cine.nii.gz"
    _nifti_4d(path, step, units)
    volume = io.read(path)
    assert volume.array.shape == (5, 2, 3, 4)
    np.testing.assert_allclose(volume.frame_times, expected, atol=1e-3)


def test_4d_plain_nrrd_is_read_as_a_cine(tmp_path, oblique_cine):
    sequence = io.write(oblique_cine, tmp_path / "x.seq.nrrd")
    plain = sequence.rename(tmp_path / "x.nrrd")
    assert_same_volume(io.read(plain), oblique_cine)


def test_list_axis_first_sequence_is_read(tmp_path, oblique_cine):
    """Older Slicer files put the list (time) axis first: 'axis 0 index values'."""
    import nrrd

    directions = (oblique_cine.direction * np.asarray(oblique_cine.spacing)).T
    header = {
        "space": "left-posterior-superior",
        "kinds": ["list", "domain", "domain", "domain"],
        "space directions": np.vstack([np.full(3, np.nan), directions]),
        "space origin": np.asarray(oblique_cine.origin),
        "units": ["ms", "", "", ""],
        "axis 0 index values": "0 40 80 120",
    }
    data = np.moveaxis(oblique_cine.array, 0, -1)  # C order (Z, Y, X, T) = NRRD (t, x, y, z)
    nrrd.write(str(tmp_path / "old.seq.nrrd"), np.ascontiguousarray(data), header, index_order="C")
    back = io.read(tmp_path / "old.seq.nrrd")
    assert_same_volume(back, oblique_cine)
    assert back.frame_times == (0.0, 40.0, 80.0, 120.0)


def test_segmentation_round_trip_keeps_labels_and_geometry(tmp_path, oblique_stack):
    labels = oblique_stack.replace(array=(oblique_stack.array % 4).astype(np.uint8))
    back = io.read_segmentation(io.write_segmentation(labels, tmp_path / "labels.seg.nrrd"))
    assert_same_volume(back, labels)


def test_segmentation_refuses_unknown_label_values(tmp_path, oblique_stack):
    labels = oblique_stack.replace(array=np.full(oblique_stack.array.shape, 7, np.uint8))
    with pytest.raises(OutputError, match=r"label values must be 0 or one of \[1, 2, 3\], not \[7\]"):
        io.write_segmentation(labels, tmp_path / "labels.seg.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_upsampled_stack_lies_exactly_over_its_input(tmp_path, oblique_stack):
    factor = 3
    dense_shape = (oblique_stack.dense_slice_count(factor), *oblique_stack.slice_shape)
    dense = Volume(np.zeros(dense_shape, np.float32), **oblique_stack.dense_geometry(factor))
    sparse_file = io.write(oblique_stack, tmp_path / "sparse.nii.gz")
    dense_file = io.write(dense, tmp_path / "dense.nii.gz")
    sparse_image, dense_image = sitk.ReadImage(str(sparse_file)), sitk.ReadImage(str(dense_file))
    for i in range(oblique_stack.n_slices):
        for corner in [(0, 0), (23, 0), (0, 19), (23, 19)]:
            acquired = sparse_image.TransformIndexToPhysicalPoint((*corner, i))
            upsampled = dense_image.TransformIndexToPhysicalPoint((*corner, i * factor))
            np.testing.assert_allclose(upsampled, acquired, atol=1e-3)
            np.testing.assert_allclose(dense.index_to_physical((*corner, i * factor)), acquired, atol=1e-3)


def test_missing_file_is_an_input_file_error(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        io.read(tmp_path / "absent.nii.gz")


@pytest.mark.parametrize("name", ["x.nii.gz", "x.nrrd", "x.seq.nrrd", "x.seg.nrrd"])
def test_corrupt_file_is_an_input_file_error_naming_it(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(400))
    with pytest.raises(InputFileError, match=name.replace(".", r"\.")) as info:
        io.read(path)
    assert info.value.__cause__ is not None


def test_unknown_output_suffix_is_refused(tmp_path, oblique_stack):
    with pytest.raises(OutputError, match=r"must end in .*not 'x\.png'"):
        io.write(oblique_stack, tmp_path / "x.png")


def test_cine_into_plain_nrrd_is_refused(tmp_path, oblique_cine):
    with pytest.raises(OutputError, match="seq.nrrd"):
        io.write(oblique_cine, tmp_path / "x.nrrd")


def test_overwrite_false_keeps_existing_file(tmp_path, oblique_stack):
    target = tmp_path / "x.nrrd"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        io.write(oblique_stack, target, overwrite=False)
    assert target.read_bytes() == b"keep me"


def test_missing_output_folder_is_refused(tmp_path, oblique_stack):
    with pytest.raises(OutputError, match="does not exist"):
        io.write(oblique_stack, tmp_path / "no" / "x.nrrd")


@pytest.mark.parametrize("name", ["x.nii.gz", "x.seq.nrrd", "x.seg.nrrd"])
def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, oblique_stack, name):
    import nrrd

    def fail_midway(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(sitk.ImageFileWriter, "Execute", lambda self, image: fail_midway(self.GetFileName()))
    monkeypatch.setattr(nrrd, "write", fail_midway)
    target = tmp_path / name
    target.write_bytes(b"previous result")
    labels = oblique_stack.replace(array=(oblique_stack.array % 4).astype(np.uint8))
    with pytest.raises(OSError):
        io.write(labels, target)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert target.read_bytes() == b"previous result"


@pytest.mark.data
@pytest.mark.parametrize(
    ("relative", "shape", "cine"),
    [
        ("acdc/patient001_ED.nii.gz", (10, 256, 216), False),
        ("acdc_cine/patient001_4d.nii.gz", (30, 7, 95, 100), True),
        ("sunnybrook/SCD0000101_4d.nii.gz", (20, 12, 256, 256), True),
    ],
)
def test_reads_real_data(shared_data, relative, shape, cine):
    from calid.io.validate import validate_volume

    volume = io.read(shared_data / relative)
    assert volume.array.shape == shape
    assert volume.is_cine == cine
    assert np.issubdtype(volume.array.dtype, np.integer)
    assert volume.spacing[2] == pytest.approx(10.0)
    if cine:
        assert volume.frame_times == tuple(float(t) for t in range(shape[0]))  # files give no timing
    validate_volume(volume)


@pytest.mark.data
def test_sunnybrook_direction_is_oblique_and_lps(shared_data):
    volume = io.read(shared_data / "sunnybrook/SCD0000101_4d.nii.gz")
    assert np.abs(volume.direction - np.round(volume.direction)).max() > 0.1
    # the NIfTI affine is RAS: our LPS affine flips its first two rows
    import nibabel as nib

    ras = nib.load(str(shared_data / "sunnybrook/SCD0000101_4d.nii.gz")).affine
    np.testing.assert_allclose(volume.affine_ras(), ras, atol=1e-3)


def test_written_file_gets_the_usual_permissions(tmp_path, oblique_stack):
    old = os.umask(0o022)
    try:
        path = io.write(oblique_stack, tmp_path / "x.nii.gz")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_output_that_is_a_folder_is_refused(tmp_path, oblique_stack):
    (tmp_path / "out.nrrd").mkdir()
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        io.write(oblique_stack, tmp_path / "out.nrrd")
