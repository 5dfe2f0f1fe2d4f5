"""The learned motion guide as the CaLID sampler's start (``guide="motion"``): API, CLI, report, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.errors import InputError  # noqa: E402
from calid.progress import Progress  # noqa: E402


class Identity:
    """An 'autoencoder' whose latents are the images, so the guide's latents can be compared with pixels."""

    def encode(self, images):
        return images


def phantom_volume(n_slices: int = 4, size: int = 48, frames: int = 1):
    from calid.phantom.generator import make_phantom

    return make_phantom(n_slices=n_slices, size=(size, size), seed=4, n_frames=frames, as_3d=frames == 1).image


def bundled_calid_and_motion() -> None:
    import calid.methods.reconstruction as rec
    from calid.errors import ModelError
    from calid.models.motion import DEFAULT_MODEL
    from calid.models.search import find_model

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    try:
        find_model(DEFAULT_MODEL)
    except ModelError:
        pytest.skip("the bundled motion guide is not installed")


def test_motion_guide_is_the_motion_interpolation_of_every_pair_of_every_frame():
    """Two frames x two gaps in one call: each missing slice is motion_interpolate's, normalised, in gap order."""
    from calid.methods.calid_codec import motion_guide
    from calid.models.motion import MotionNet, motion_interpolate
    from calid.models.preprocess import normalise

    torch.manual_seed(0)
    model = MotionNet(stem_channels=4, flow_width=8, refine_width=4).eval()
    source = phantom_volume(n_slices=4, size=40, frames=2).array.astype(np.float32)  # (T=2, Z=4, Y, X)
    scale = float(np.percentile(source, 99.5))
    guide, images = motion_guide(Identity(), model, source, scale, 3, range(1, 3), "cpu", Progress("none"))
    assert guide.shape == (2, 4, 1, 40, 40) and images.shape == (2, 4, 40, 40)
    for t in range(2):
        dense = motion_interpolate(source[t], 3, model)
        np.testing.assert_allclose(guide[t, :, 0].numpy(), normalise(dense[[4, 5, 7, 8]], scale), atol=1e-4)
    np.testing.assert_array_equal(images.numpy(), guide[:, :, 0].numpy())


def test_calid_with_the_motion_guide_through_the_api():
    from calid.methods.reconstruction import reconstruct

    bundled_calid_and_motion()
    stack = phantom_volume()
    result = reconstruct(stack, factor=2, method="calid", seed=0, guide="motion", device="cpu")
    dense = result.volume
    np.testing.assert_array_equal(dense.array[::2], stack.array)  # acquired slices bit-exact
    assert result.sampler["guide"] == "motion" and result.sampler["guide_blend"] == 0.2
    assert "motion guide" in result.stage_seconds and "register" not in result.stage_seconds
    assert "calid-motion-acdc" in {model["name"] for model in result.models}
    registration = reconstruct(stack, factor=2, method="calid", seed=0, guide="registration", device="cpu")
    assert np.abs(dense.array[1::2].astype(float) - registration.volume.array[1::2]).max() > 0


def test_calid_with_the_motion_guide_through_the_cli(tmp_path):
    from calid.cli import main
    from calid.io.read_write import read, write

    bundled_calid_and_motion()
    stack = phantom_volume()
    source, target = tmp_path / "sparse.nrrd", tmp_path / "dense.nrrd"
    write(stack, source)
    assert main(["reconstruct", str(source), "-o", str(target), "--factor", "2", "--method", "calid",
                 "--guide", "motion", "--guide-blend", "0.5", "--device", "cpu", "--progress", "none"]) == 0
    np.testing.assert_array_equal(read(target).array[::2], stack.array)
    report = json.loads((tmp_path / "dense.calid.json").read_text())
    assert report["sampler"]["guide"] == "motion" and report["sampler"]["guide_blend"] == 0.5
    alone = tmp_path / "motion.nrrd"
    assert main(["reconstruct", str(source), "-o", str(alone), "--factor", "2", "--method", "motion", "--progress", "none"]) == 0
    np.testing.assert_array_equal(read(alone).array[::2], stack.array)
    report = json.loads((tmp_path / "motion.calid.json").read_text())
    assert report["method"] == "motion" and [m["name"] for m in report["models"]] == ["calid-motion-acdc"]


def test_an_unknown_guide_is_refused_before_any_model_loads(monkeypatch, capsys):
    import calid.methods.calid_fill as calid_fill
    from calid.cli import main
    from calid.methods.reconstruction import reconstruct

    def no_loading(*args, **kwargs):
        raise AssertionError("models were loaded before the guide was checked")

    monkeypatch.setattr(calid_fill, "load_models", no_loading)
    monkeypatch.setattr(calid_fill, "load_motion_guide", no_loading)
    with pytest.raises(InputError, match="guide must be one of registration, motion, none"):
        reconstruct(phantom_volume(), factor=2, method="calid", guide="flow")
    with pytest.raises(InputError, match="guide 'none' does not make"):
        reconstruct(phantom_volume(), factor=2, method="calid", guide="none", guide_blend=0.2)
    with pytest.raises(SystemExit):
        main(["reconstruct", "in.nrrd", "-o", "out.nrrd", "--method", "calid", "--guide", "flow"])
    assert "invalid choice: 'flow'" in capsys.readouterr().err
