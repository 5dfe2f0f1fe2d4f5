"""The 2D+T denoiser, its sampler path, mode selection and its training batches (tiny untrained models)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

import calid.methods.calid_fill as calid_fill  # noqa: E402
from calid.methods.calid_fill import fill  # noqa: E402
from calid.errors import InputError, ModelError  # noqa: E402
from calid.models.denoiser import SliceDenoiser  # noqa: E402
from calid.models.temporal import TemporalSliceDenoiser  # noqa: E402
from calid.models.vae import SliceAutoencoder  # noqa: E402
from calid.progress import Progress  # noqa: E402
from calid.models.format import ModelConfig, save_model  # noqa: E402

from tiny_models import TINY_DENOISER, TINY_VAE  # noqa: E402


def _randomised(model: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, scale)
    return model.eval()


@pytest.fixture(scope="module")
def slice_model():
    return _randomised(SliceDenoiser(**TINY_DENOISER), 0)


def _temporal_from(slice_model, mixing: bool) -> TemporalSliceDenoiser:
    model = TemporalSliceDenoiser(**TINY_DENOISER)
    model.load_slice_weights(slice_model)
    if mixing:
        _randomised(model.mixers, 3, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory, slice_model):
    """Folders: tiny VAE, a 3D denoiser, its 2D+T twin with zero mixers, and one with active mixers."""
    root = tmp_path_factory.mktemp("temporal-models")
    torch.manual_seed(1)
    save_model(SliceAutoencoder(**TINY_VAE), ModelConfig("tiny-vae", "1.0.0", "vae", "calid-vae", TINY_VAE), root / "tiny-vae", "# t")
    extra = {"autoencoder": "tiny-vae"}
    folders = {"3d": save_model(slice_model, ModelConfig("tiny-3d", "1.0.0", "denoiser", "calid-denoiser", TINY_DENOISER, extra),
                                root / "tiny-3d", "# t")}
    for name, mixing in (("2dt-zero", False), ("2dt", True)):
        config = ModelConfig(f"tiny-{name}", "1.0.0", "denoiser", "calid-denoiser-2dt", {**TINY_DENOISER, "temporal_kernel": 3}, extra)
        folders[name] = save_model(_temporal_from(slice_model, mixing), config, root / f"tiny-{name}", "# t")
    return folders


def _inputs(count: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    noisy = torch.randn(count, 2, 8, 8, generator=generator)
    context = torch.randn(count, 4, 2, 8, 8, generator=generator)
    return noisy, torch.full((count,), 5), context, torch.full((count,), 0.5), torch.full((count,), 20.0)


def test_untrained_mixers_leave_the_3d_model_unchanged(slice_model):
    inputs = _inputs(6)
    with torch.no_grad():
        torch.testing.assert_close(_temporal_from(slice_model, False)(*inputs, frames=3), slice_model(*inputs))


def test_mixing_reaches_neighbouring_frames_around_the_cycle_but_not_other_clips(slice_model):
    model = _temporal_from(slice_model, True)
    inputs = list(_inputs(8))  # two clips of 4 frames
    with torch.no_grad():
        before = model(*inputs, frames=4)
        changed = inputs[0].clone()
        changed[0] += 1.0  # frame 0 of clip 0
        after = model(changed, *inputs[1:], frames=4)
    moved = (after - before).abs().flatten(1).amax(dim=1)
    assert moved[1] > 1e-4 and moved[3] > 1e-4  # the next frame, and the last one (circular in time)
    assert torch.all(moved[4:] == 0)  # the other clip never sees it


def test_mixing_leaves_a_clip_that_does_not_move_as_the_3d_model_makes_it(slice_model):
    """Frames that are all alike (static tissue, empty background) get no offset from the mixers."""
    model = _temporal_from(slice_model, True)
    noisy, steps, context, fraction, gap = _inputs(1)
    still = [x.repeat(5, *([1] * (x.ndim - 1))) for x in (noisy, steps, context, fraction, gap)]
    with torch.no_grad():
        torch.testing.assert_close(model(*still, frames=5), slice_model(*still), rtol=1e-4, atol=1e-5)


def test_temporal_model_refuses_batches_that_are_not_whole_clips(slice_model):
    model = _temporal_from(slice_model, True)
    with pytest.raises(ValueError, match="clips of 4 frames"):
        model(*_inputs(6), frames=4)
    with pytest.raises(ValueError, match="needs frames"):
        model(*_inputs(4))


def test_load_slice_weights_refuses_a_different_shape(slice_model):
    other = TemporalSliceDenoiser(**{**TINY_DENOISER, "channels": [8, 8]})
    with pytest.raises(ValueError, match="does not match"):
        other.load_slice_weights(slice_model)


def _cine(frames: int = 4, slices: int = 4) -> np.ndarray:
    return np.random.default_rng(2).uniform(0, 400, size=(frames, slices, 12, 10)).astype(np.float32)


def test_2dt_with_zero_mixers_equals_3d_frame_by_frame(models):
    """The clip-major reordering of the 2D+T path must put every latent back where it belongs."""
    kwargs = {"steps": 2, "seed": 0, "device": "cpu"}
    dense_3d, _ = fill(_cine(), 2, (1.5, 1.5, 10.0), Progress("none"), model=models["3d"], **kwargs)
    dense_2dt, _ = fill(_cine(), 2, (1.5, 1.5, 10.0), Progress("none"), model=models["2dt-zero"], mode="2dt", **kwargs)
    np.testing.assert_allclose(dense_2dt, dense_3d, rtol=1e-5, atol=1e-3)
    mixed, _ = fill(_cine(), 2, (1.5, 1.5, 10.0), Progress("none"), model=models["2dt"], mode="2dt", **kwargs)
    assert np.abs(mixed[:, 1::2] - dense_3d[:, 1::2]).max() > 1e-3
    np.testing.assert_array_equal(mixed[:, ::2], _cine())


@pytest.mark.parametrize("name, mode, order", [("3d", "3d", "parallel"), ("3d", "3d", "autoregressive"),
                                               ("2dt", "2dt", "parallel")])
def test_rounds_of_a_few_gaps_give_the_same_volume(models, monkeypatch, name, mode, order):
    kwargs = {"steps": 2, "seed": 0, "device": "cpu", "model": models[name], "mode": mode, "order": order}
    whole, _ = fill(_cine(3, 5), 3, (1.5, 1.5, 10.0), Progress("none"), **kwargs)
    monkeypatch.setattr(calid_fill, "ROUND_LATENT_PIXELS", 1)  # one gap per round
    progress = Progress("none")
    rounds, _ = fill(_cine(3, 5), 3, (1.5, 1.5, 10.0), progress, **kwargs)
    np.testing.assert_allclose(rounds, whole, rtol=1e-4, atol=1e-2)  # batch size changes float rounding only


def test_fill_refuses_a_model_that_does_not_fit_the_mode(models):
    with pytest.raises(ModelError, match="needs the 2D\\+T model"):
        fill(_cine(), 2, (1, 1, 10), Progress("none"), device="cpu", model=models["3d"], mode="2dt")
    with pytest.raises(ModelError, match="needs a 3D denoiser"):
        fill(_cine(), 2, (1, 1, 10), Progress("none"), device="cpu", model=models["2dt"], mode="3d")
    with pytest.raises(InputError, match="autoregressive"):
        fill(_cine(), 2, (1, 1, 10), Progress("none"), device="cpu", model=models["2dt"], mode="2dt", order="autoregressive")


def test_reconstruct_picks_2dt_for_a_cine_when_the_model_is_2dt(models, oblique_cine, oblique_stack):
    from calid.methods.reconstruction import reconstruct, resolve_mode

    result = reconstruct(oblique_cine, factor=2, method="calid", model=str(models["2dt"]), steps=2, device="cpu")
    assert result.mode == "2dt" and not any("frame by frame" in note for note in result.notes)
    assert result.volume.array.shape == (4, 9, 16, 18) and result.volume.synthesized == (1, 3, 5, 7)
    np.testing.assert_array_equal(result.volume.array[:, ::2], oblique_cine.array)
    assert resolve_mode("auto", "calid", oblique_cine, str(models["3d"]))[0] == "3d"
    with pytest.raises(InputError, match="is a 3D model"):
        resolve_mode("2dt", "calid", oblique_cine, str(models["3d"]))
    with pytest.raises(InputError, match="single 3D stack"):
        resolve_mode("2dt", "calid", oblique_stack, str(models["2dt"]))
    with pytest.raises(InputError, match="CaLID mode"):
        resolve_mode("2dt", "linear", oblique_cine)


def test_training_clips_share_one_timestep_and_hold_every_frame():
    from calid.train.temporal import LatentCine, temporal_batch, temporal_difference_error

    latents = np.random.default_rng(0).normal(size=(6, 5, 2, 10, 10)).astype(np.float16)
    cines = [LatentCine(latents, 8.0, "patient001_4d.nii.gz")]
    target, context, fraction, gap_mm, noise, steps, frames = temporal_batch(cines, 3, 8, 2, 1000, torch.Generator().manual_seed(0))
    assert frames == 6 and target.shape == (18, 2, 8, 8) and context.shape == (18, 4, 2, 8, 8)
    assert all(len(set(clip.tolist())) == 1 for clip in steps.split(6))
    assert all(len(set(clip.tolist())) == 1 for clip in fraction.split(6)) and set(gap_mm.tolist()) <= {16.0, 24.0, 32.0}
    assert temporal_difference_error(target, target, 6) == 0
    assert temporal_difference_error(target + 1.0, target, 6) == pytest.approx(0.0, abs=1e-6)  # a constant offset does not move


@pytest.mark.parametrize("augment", [False, True])
def test_guided_clips_carry_the_guide_of_their_own_target_frame_by_frame(augment):
    """Guides filled with each row's true target latent must come back equal to the targets (same frames, crop, turn)."""
    from calid.train.guides import guide_rows
    from calid.train.temporal import LatentCine, clip_batch

    frames, count = 20, 6
    latents = np.random.default_rng(1).normal(size=(frames, count, 2, 9, 11)).astype(np.float16)
    rows = guide_rows(count)
    guides = np.stack([latents[:, first + step] for first, _, step in rows], axis=1)  # (T, rows, C, h, w)
    phantom = LatentCine(np.zeros((4, count, 2, 9, 11), np.float16), 8.0, "phantom10000")
    cines = [phantom, LatentCine(latents, 8.0, "patient001_4d.nii.gz")]
    for seed in range(4):  # several draws: every-second-frame clips and crops included
        target, context, fraction, gap_mm, guide, t = clip_batch(cines, 3, 8, 2, torch.Generator().manual_seed(seed), augment,
                                                                 guides=[None, guides])
        assert t in (10, 20) and guide.shape == target.shape == (3 * t, 2, 8, 8)
        torch.testing.assert_close(guide, target, rtol=0, atol=0)


def test_cine_guides_morph_every_frame_and_skip_phantoms(tmp_path):
    import SimpleITK as sitk

    from calid.train.guides import stack_guides
    from calid.train.temporal import Cine, cine_guides

    class Identity:
        def encode(self, images):
            return images

    frames = np.random.default_rng(2).uniform(0, 1, size=(2, 4, 12, 14)).astype(np.float16)
    image = sitk.GetImageFromArray(frames.astype(np.float32))
    image.SetSpacing((1.5, 1.5, 10.0, 1.0))
    sitk.WriteImage(image, str(tmp_path / "patient001_4d.nii.gz"))
    cines = [Cine(frames, 10.0, "patient001_4d.nii.gz"), Cine(frames, 10.0, "phantom10000")]
    real, phantom = cine_guides(Identity(), cines, [str(tmp_path)])
    assert phantom is None and real.shape == (2, len(stack_guides(frames[0], (1.5, 1.5))), 1, 12, 14)
    np.testing.assert_allclose(real[1, :, 0].astype(np.float32), stack_guides(frames[1], (1.5, 1.5)), atol=1e-3)


def test_intensity_scale_of_a_huge_array_uses_an_even_sample(monkeypatch):
    import calid.models.preprocess as preprocess

    values = np.random.default_rng(0).gamma(2.0, 50.0, size=200_000).astype(np.int16)
    exact = preprocess.intensity_scale(values)
    monkeypatch.setattr(preprocess, "SCALE_SAMPLE_VOXELS", 20_000)
    assert preprocess.intensity_scale(values) == pytest.approx(exact, rel=0.03)


def test_train_command_tunes_only_the_temporal_layers(tmp_path, models):
    import SimpleITK as sitk

    from calid.cli import main
    from calid.models.format import load_model

    data = tmp_path / "data"
    data.mkdir()
    for name in ("patient001_4d.nii.gz", "patient013_4d.nii.gz", "patient002_ED.nii.gz"):  # train cine, val cine, a 3D file
        volumes = [np.random.default_rng(t).integers(0, 900, (5, 20, 24)).astype(np.int16) for t in range(6 if "4d" in name else 1)]
        image = sitk.JoinSeries([sitk.GetImageFromArray(v) for v in volumes]) if "4d" in name else sitk.GetImageFromArray(volumes[0])
        sitk.WriteImage(image, str(data / name))
    for objective, init in (("trajectory", "3d"), ("guided", "3d"), ("guided", "2dt")):
        out = tmp_path / f"{objective}-{init}"
        code = main(["train", "denoiser-2dt", "--data", str(data), "--out", str(out), "--steps", "3", "--batch", "2",
                     "--crop", "16", "--lr", "1e-2", "--phantoms", "1", "--vae", str(models["3d"].parent / "tiny-vae"),
                     "--init", str(models[init]), "--cache-dir", str(tmp_path / "cache"), "--objective", objective])
        assert code == 0
    assert len(list((tmp_path / "cache").glob("cine-guides-*.npz"))) == 2  # train and val, cached for the next run
    start, _ = load_model(models["3d"])
    for init, origin in (("3d", "tiny-3d"), ("2dt", "tiny-2dt")):  # (this test's 2D+T model does not name its 3D origin)
        tuned, config = load_model(tmp_path / f"guided-{init}" / "model")
        assert config.architecture == "calid-denoiser-2dt" and config.extra["initialised_from"] == origin
        for name, value in start.state_dict().items():  # the 3D weights never move
            torch.testing.assert_close(tuned.state_dict()[name], value, rtol=0, atol=0)
        assert any(mixer.second.weight.abs().max() > 0 for mixer in tuned.mixers)
    before, _ = load_model(models["2dt"])
    after, _ = load_model(tmp_path / "guided-2dt" / "model")
    assert any(not torch.equal(a.second.weight, b.second.weight) for a, b in zip(after.mixers, before.mixers))


def test_bundled_2dt_model_makes_cines_by_default():
    from calid.phantom.generator import make_phantom
    from calid.methods.reconstruction import calid_model_available, reconstruct

    if not calid_model_available("calid-denoiser-2dt-acdc"):
        pytest.skip("the bundled 2D+T model is not installed")
    cine = make_phantom(n_slices=4, n_frames=5, size=(48, 48), pixel_spacing=4.0, seed=3).image
    result = reconstruct(cine, factor=2)
    assert (result.method, result.mode) == ("calid", "2dt")
    np.testing.assert_array_equal(result.volume.array[:, ::2], cine.array)
    assert np.isfinite(result.volume.array).all() and result.volume.synthesized == (1, 3, 5)
    single = reconstruct(cine.replace(array=cine.array[0], frame_times=None), factor=2)
    assert single.mode == "3d"
