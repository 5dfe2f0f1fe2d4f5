"""The synthetic cine phantom: anatomy, contraction, contrast, geometry, determinism and CLI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from calid.errors import InputError
from calid.segmentation.labels import LV, MYO, RV
from calid.phantom.generator import PhantomParams, make_phantom, make_phantom_pair
from calid.phantom.anatomy import ES_PHASE, contraction

#: Small but anatomically complete: a 192 mm field of view holds the whole heart.
SMALL = dict(n_slices=6, n_frames=4, size=(96, 96), pixel_spacing=2.0, slice_spacing=16.0)


@pytest.fixture(scope="module")
def small():
    return make_phantom(**SMALL)


@pytest.fixture(scope="module")
def fine():
    """Thin 2 mm slices of 1 mm pixels, ED to ES in frame 7 of 20, no noise: volumes by voxel counting."""
    return make_phantom(n_slices=52, n_frames=20, size=(128, 128), pixel_spacing=1.0, slice_spacing=2.0,
                        noise=0.0, first_slice_mm=-4.0)


def test_shapes_dtypes_geometry_and_frame_times(small):
    image, labels = small.image, small.labels
    assert image.array.shape == labels.array.shape == (4, 6, 96, 96)
    assert image.array.dtype == np.float32 and labels.array.dtype == np.uint8
    assert image.spacing == labels.spacing == (2.0, 2.0, 16.0)
    assert image.same_geometry(labels)
    assert image.frame_times == labels.frame_times == (0.0, 250.0, 500.0, 750.0)  # 60 bpm
    assert set(np.unique(labels.array)) == {0, RV, MYO, LV}
    assert make_phantom(**SMALL, heart_rate=75.0).image.frame_times[1] == pytest.approx(200.0)


def test_3d_phantom_is_a_stack_and_needs_one_frame():
    phantom = make_phantom(**{**SMALL, "n_frames": 1}, as_3d=True)
    assert phantom.image.array.shape == phantom.labels.array.shape == (6, 96, 96)
    assert not phantom.image.is_cine and phantom.image.frame_times is None
    with pytest.raises(InputError, match="n_frames must be 1 for a 3D phantom"):
        PhantomParams(n_frames=3, as_3d=True)


def test_myocardium_surrounds_lv_cavity_on_mid_slices(fine):
    labels = fine.labels.array
    for t in (0, 7):
        lv_slices = np.flatnonzero((labels[t] == LV).any(axis=(1, 2)))
        for z in lv_slices[len(lv_slices) // 4: 3 * len(lv_slices) // 4]:
            ring = ndimage.binary_dilation(labels[t, z] == LV, iterations=2) & (labels[t, z] != LV)
            assert ring.any() and np.all(labels[t, z][ring] == MYO), f"frame {t} slice {z}"


@pytest.mark.parametrize("ef", [0.6, 0.35])
def test_lv_volume_at_es_over_ed_is_one_minus_ef(ef):
    phantom = make_phantom(n_slices=48, n_frames=20, size=(112, 112), pixel_spacing=1.0, slice_spacing=2.0,
                           noise=0.0, first_slice_mm=-2.0, ejection_fraction=ef)
    es = round(ES_PHASE * 20)
    volumes = (phantom.labels.array[[0, es]] == LV).sum(axis=(1, 2, 3)) * 2.0  # mm^3 (1 x 1 x 2)
    assert volumes[1] / volumes[0] == pytest.approx(1 - ef, abs=0.02)
    assert 100e3 < volumes[0] < 190e3  # a plausible end-diastolic volume (mL x 1000)


def test_wall_thickens_and_myocardial_volume_is_conserved(fine):
    labels = fine.labels.array
    myo_ml = (labels == MYO).sum(axis=(1, 2, 3)) * 2.0 / 1000
    assert np.ptp(myo_ml) < 0.05 * myo_ml.mean()
    z = np.argmax((labels[0] == LV).sum(axis=(1, 2)) > 0) + 20  # 40 mm below the basal-most LV slice
    def wall(t):
        cavity, outer = (labels[t, z] == LV).sum(), np.isin(labels[t, z], (LV, MYO)).sum()
        return np.sqrt(outer / np.pi) - np.sqrt(cavity / np.pi)
    assert 7.0 < wall(0) < 11.0 and wall(7) > 1.3 * wall(0)


def test_anatomy_changes_from_base_to_apex(fine):
    labels = fine.labels.array[0]
    lv_area, rv_area = (labels == LV).sum(axis=(1, 2)), (labels == RV).sum(axis=(1, 2))
    present = np.flatnonzero(lv_area)
    assert np.all(np.diff(lv_area[present[0]: present[-1] + 1]) <= 2)  # shrinks towards the apex
    assert lv_area[present[0]] > 5 * lv_area[present[-1]]
    assert rv_area[present[0]] > 0 and rv_area[present[-1]] == 0  # RV absent at the apex
    centres = [ndimage.center_of_mass(labels[z] == LV) for z in (present[0], present[-1])]
    assert np.hypot(*np.subtract(*centres)) > 3.0  # the axis is tilted: not just a scaled copy


def test_blood_is_brighter_than_myocardium(small):
    image, labels = small.image.array, small.labels.array
    blood, myo = image[np.isin(labels, (LV, RV))].mean(), image[labels == MYO].mean()
    tissue = image[labels == 0].mean()
    assert blood > 2.5 * myo and tissue < blood


def test_seeded_determinism_and_different_seeds_differ(small):
    again = make_phantom(**SMALL)
    assert np.array_equal(small.image.array, again.image.array)
    assert np.array_equal(small.labels.array, again.labels.array)
    other = make_phantom(**SMALL, seed=1)
    assert not np.allclose(small.image.array, other.image.array, atol=0.05)
    assert not np.array_equal(small.labels.array, other.labels.array)  # the seed varies the heart too


def test_sparse_and_dense_coincide_where_positions_do():
    sparse, dense = make_phantom_pair(4, n_slices=4, n_frames=3, size=(80, 80), pixel_spacing=2.4)
    assert dense.image.n_slices == 13 and dense.image.slice_spacing == pytest.approx(2.5)
    assert dense.params.thickness == sparse.params.thickness == pytest.approx(8.0)
    assert np.allclose(dense.image.origin, sparse.image.origin)
    assert np.array_equal(dense.image.array[:, ::4], sparse.image.array)
    assert np.array_equal(dense.labels.array[:, ::4], sparse.labels.array)
    between = dense.image.array[:, 1::4]
    assert not np.allclose(between, dense.image.array[:, 0:-1:4], atol=0.05)
    assert dense.image.same_geometry(dense.labels)


def test_oblique_direction_is_a_proper_rotation_and_keeps_the_image(small):
    oblique = make_phantom(**SMALL, oblique=True)
    direction = oblique.image.direction
    assert np.allclose(direction.T @ direction, np.eye(3)) and np.linalg.det(direction) == pytest.approx(1.0)
    assert not np.allclose(direction, np.eye(3), atol=0.1)
    assert np.array_equal(small.image.direction, np.eye(3))
    assert np.array_equal(oblique.image.array, small.image.array)
    # the stack's first image centre sits at the same depth along the normal either way
    centre = np.array([47.5, 47.5, 0.0])
    assert oblique.image.index_to_physical(centre) @ direction[:, 2] == pytest.approx(oblique.params.first_slice)


def test_contraction_curve_is_periodic_with_es_at_35_percent():
    phase = np.linspace(0, 1, 201)
    curve = contraction(phase)
    assert curve[0] == 0 and curve[-1] == pytest.approx(0, abs=1e-12)
    assert phase[np.argmax(curve)] == pytest.approx(ES_PHASE) and curve.max() == pytest.approx(1.0)
    assert np.abs(np.diff(curve)).max() < 0.05  # smooth: no jumps


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_slices": 1}, "n_slices must be at least 2"),
        ({"ejection_fraction": 1.2}, "ejection_fraction must be in"),
        ({"size": (8, 64)}, "size must be"),
        ({"slice_thickness": 0.0}, "slice_thickness must be positive"),
        ({"heart_rate": 0.0}, "heart_rate must be in"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(overrides, message):
    with pytest.raises(InputError, match=message):
        make_phantom(**overrides)


def test_pair_refuses_a_fractional_factor():
    with pytest.raises(InputError, match="factor must be a positive integer"):
        make_phantom_pair(2.5)


def test_cli_writes_image_and_labels(tmp_path):
    from calid.cli import main
    from calid.io.read_write import read

    image, labels = tmp_path / "cine.nii.gz", tmp_path / "labels.nii.gz"
    argv = ["phantom", "-o", str(image), "--slices", "5", "--frames", "3", "--size", "64",
            "--pixel-spacing", "3", "--labels", str(labels), "--oblique", "--seed", "2"]
    assert main(argv) == 0
    written = read(image)
    assert written.array.shape == read(labels).array.shape == (3, 5, 64, 64)
    assert written.spacing == pytest.approx((3.0, 3.0, 10.0))
    assert set(np.unique(read(labels).array)) <= {0, RV, MYO, LV}
    stack = tmp_path / "stack.nrrd"
    assert main(["phantom", "-o", str(stack), "--3d", "--slices", "4", "--size", "48", "--pixel-spacing", "4"]) == 0
    assert read(stack).array.shape == (4, 48, 48)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--slices", "1"], "n_slices must be at least 2"),
        (["--3d", "--frames", "5"], "--3d writes a single frame"),
        (["--labels", "labels.seg.nrrd"], "cine labels must be written as"),
    ],
)
def test_cli_refuses_bad_arguments_and_writes_nothing(tmp_path, capsys, extra, message):
    from calid.cli import main

    extra = [str(tmp_path / a) if a.endswith(".seg.nrrd") else a for a in extra]
    assert main(["phantom", "-o", str(tmp_path / "out.nii.gz"), "--size", "32", *extra]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_phantom_command_can_store_int16_like_a_scanner(tmp_path):
    from calid.cli import main
    from calid.io.read_write import read

    out = tmp_path / "cine.nii.gz"
    assert main(["phantom", "-o", str(out), "--slices", "3", "--frames", "2", "--size", "32", "--int16"]) == 0
    volume = read(out)
    assert volume.array.dtype == np.int16 and volume.array.shape == (2, 3, 32, 32)
    assert 500 < np.percentile(volume.array, 99.5) < 3000
