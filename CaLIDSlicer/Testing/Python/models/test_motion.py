"""Learned motion guide: shapes, end points, learning a translation, save/load, errors, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calid.errors import InputError
from calid.models.motion import MotionNet, from_pretrained, interpolate, motion_interpolate, target_flows

TINY = {"stem_channels": 2, "flow_width": 4, "refine_width": 2}


def tiny_model(seed: int = 0) -> MotionNet:
    torch.manual_seed(seed)
    return MotionNet(**TINY).eval()


def blob(size: int = 64, centre: tuple[float, float] = (32.0, 32.0), radius: float = 9.0) -> np.ndarray:
    """A bright disc with a soft edge and a darker ring inside: something to track."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    r = np.hypot(y - centre[0], x - centre[1])
    disc = 1.0 / (1.0 + np.exp((r - radius) / 1.5))
    ring = 0.5 * np.exp(-((r - radius / 2) ** 2) / 4.0)
    return (0.1 + disc - ring).astype(np.float32)


def test_shapes_for_one_pair_and_for_several_pairs_of_any_size():
    model = tiny_model()
    rng = np.random.default_rng(0)
    prev, next_ = rng.random((3, 40, 52), np.float32), rng.random((3, 40, 52), np.float32)
    assert interpolate(model, prev[0], next_[0], [0.25, 0.5, 0.75]).shape == (3, 40, 52)
    assert interpolate(model, prev, next_, [0.5]).shape == (3, 1, 40, 52)
    dense = motion_interpolate(prev, 4, model)
    assert dense.shape == (9, 40, 52)
    np.testing.assert_array_equal(dense[::4], prev)


def test_fraction_zero_returns_prev_and_one_returns_next():
    model = tiny_model()
    prev, next_ = blob(), blob(centre=(36.0, 30.0))
    ends = interpolate(model, 50.0 * prev, 50.0 * next_, [0.0, 1.0])
    np.testing.assert_allclose(ends[0], 50.0 * prev, atol=1e-3)
    np.testing.assert_allclose(ends[1], 50.0 * next_, atol=1e-3)


def test_target_flows_follow_a_straight_line():
    f01 = torch.full((1, 2, 4, 4), 4.0)
    f_t0, f_t1 = target_flows(f01, -f01, torch.tensor(0.25).view(1, 1, 1, 1))
    assert torch.allclose(f_t0, torch.full_like(f01, -1.0))  # a quarter of the way back to prev
    assert torch.allclose(f_t1, torch.full_like(f01, 3.0))  # three quarters on to next


def test_a_known_translation_is_learned_in_a_few_steps():
    """Disc moving 8 px between the slices: after training, the middle is the disc moved 4 px, not a cross-fade."""
    from calid.train.motion import MotionLossWeights, motion_loss
    from calid.train.motion_data import TripletBatch

    torch.manual_seed(0)
    model = MotionNet(**TINY)
    prev, middle, next_ = blob(centre=(32, 28)), blob(centre=(32, 32)), blob(centre=(32, 36))
    as_batch = lambda image: torch.from_numpy(image)[None, None].repeat(2, 1, 1, 1)  # noqa: E731
    batch = TripletBatch(as_batch(prev), as_batch(next_), as_batch(middle), torch.tensor([0.5, 0.5]),
                         torch.ones(2, 1, 64, 64))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = motion_loss(model, batch, MotionLossWeights(bending=0.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    result = interpolate(model.eval(), prev, next_, [0.5])[0]
    cross_fade_error = np.abs(0.5 * (prev + next_) - middle).mean()
    assert np.abs(result - middle).mean() < 0.5 * cross_fade_error
    flows = model.pair_flows(as_batch(prev)[:1], as_batch(next_)[:1]).detach()
    inside = flows[0, 1, 6:10, 6:10].mean().item() * 4  # F01 along x, in full-resolution pixels, on the disc
    assert 5.0 < inside < 11.0


def test_save_and_load_give_identical_output(tmp_path):
    from calid.train.motion import export_model

    model = tiny_model(seed=3)
    export_model(model, tmp_path / "motion", ["test model"])
    loaded = from_pretrained(tmp_path / "motion")
    assert loaded.config == model.config
    prev, next_ = blob(), blob(centre=(30, 35))
    np.testing.assert_array_equal(interpolate(model, prev, next_, [0.3, 0.6]), interpolate(loaded, prev, next_, [0.3, 0.6]))


def test_loading_another_model_kind_is_refused(tmp_path):
    from calid.models.segmenter import SliceSegmenter
    from calid.models.format import ModelConfig, save_model

    kwargs = {"channels": [4, 8], "strides": [2], "window": 32}
    config = ModelConfig("seg", "0.0.0", "segmenter", "calid-segmenter", kwargs=kwargs)
    save_model(SliceSegmenter(**kwargs), config, tmp_path / "seg", "card")
    with pytest.raises(InputError, match="not the motion guide"):
        from_pretrained(tmp_path / "seg")


@pytest.mark.parametrize(
    ("prev", "next_", "fractions", "message"),
    [
        (np.zeros((8, 8)), np.zeros((8, 9)), [0.5], "same shape"),
        (np.zeros((2, 2, 8, 8)), np.zeros((2, 2, 8, 8)), [0.5], "slices"),
        (np.zeros((8, 8)), np.zeros((8, 8)), [1.5], "fractions"),
        (np.zeros((8, 8)), np.zeros((8, 8)), [], "fractions"),
        (np.full((8, 8), np.nan), np.zeros((8, 8)), [0.5], "NaN"),
        (np.zeros((8, 8), complex), np.zeros((8, 8), complex), [0.5], "real numbers"),
    ],
)
def test_bad_inputs_say_what_is_wrong(prev, next_, fractions, message):
    with pytest.raises(InputError, match=message):
        interpolate(tiny_model(), prev, next_, fractions)


def test_training_crop_must_fit_the_network():
    import argparse

    from calid.train.motion import run_motion

    args = argparse.Namespace(out=None, crop=96)
    with pytest.raises(ValueError, match="multiple of 64"):
        run_motion(args, torch.device("cpu"))
    with pytest.raises(ValueError, match="--ssim-weight"):
        run_motion(argparse.Namespace(out=None, crop=128, ssim_weight=-1.0), torch.device("cpu"))


def test_triplets_are_cropped_padded_and_in_range():
    from calid.train.motion_data import TripletSampler

    rng = np.random.default_rng(0)
    volumes = [rng.random((8, 150, 140)).astype(np.float16)]
    cines = [rng.random((5, 100, 95)).astype(np.float16)]
    batch = TripletSampler(volumes, cines, crop=128, seed=1).batch(16)
    assert batch.prev.shape == batch.next.shape == batch.target.shape == batch.valid.shape == (16, 1, 128, 128)
    assert torch.all((batch.a > 0) & (batch.a < 1))
    padded = batch.valid.mean(dim=(1, 2, 3))
    assert torch.any(padded < 1) and torch.any(padded == 1)  # cine frames are padded, volumes are not


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu():
    model = tiny_model(seed=1)
    prev = np.stack([blob(), blob(centre=(30, 30))])
    next_ = np.stack([blob(centre=(34, 36)), blob(centre=(28, 33))])
    on_cpu = interpolate(model, prev, next_, [0.25, 0.5, 0.75], device="cpu")
    on_gpu = interpolate(model, prev, next_, [0.25, 0.5, 0.75], device="cuda")
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-3)


def test_warp_matches_monai_warp():
    from monai.networks.blocks import Warp

    from calid.models.motion import warp

    torch.manual_seed(0)
    image, ddf = torch.rand(2, 1, 20, 28), 3 * torch.randn(2, 2, 20, 28)
    expected = Warp(mode="bilinear", padding_mode="border")(image, ddf)
    torch.testing.assert_close(warp(image, ddf), expected, atol=1e-5, rtol=1e-5)


def test_cheaper_eighth_resolution_variant_keeps_the_end_points_and_round_trips(tmp_path):
    from calid.train.motion import export_model

    torch.manual_seed(0)
    model = MotionNet(**TINY, downscale=8).eval()
    assert model.size_multiple == 128 and model.config["downscale"] == 8
    prev, next_ = blob(), blob(centre=(36.0, 30.0))
    result = interpolate(model, prev, next_, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(result[0], prev, atol=1e-5)
    np.testing.assert_allclose(result[2], next_, atol=1e-5)
    export_model(model, tmp_path / "m8", ["test model"])
    np.testing.assert_array_equal(interpolate(from_pretrained(tmp_path / "m8"), prev, next_, [0.0, 0.5, 1.0]), result)
    with pytest.raises(ValueError, match="downscale"):
        MotionNet(downscale=2)


def test_init_copies_matching_tensors_only(tmp_path):
    from calid.train.motion import export_model, init_from

    source = tiny_model(seed=5)
    export_model(source, tmp_path / "src", ["test model"])
    target = MotionNet(**TINY, downscale=8)
    copied = init_from(target, tmp_path / "src")
    assert copied == len(source.state_dict())  # the extra stride-2 layer of the 1/8 variant is new
    torch.testing.assert_close(target.flow_net.final_conv.weight, source.flow_net.final_conv.weight)


def test_motion_is_a_method_of_the_baseline_interpolator(tmp_path, monkeypatch):
    from calid.errors import ModelError
    from calid.methods.baselines import interpolate as baseline_interpolate
    from calid.models import motion
    from calid.train.motion import export_model

    monkeypatch.setenv("CALID_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("calid.models.search.BUNDLED_DIR", tmp_path / "bundle")
    motion.default_model.cache_clear()
    stack = np.stack([blob(), blob(centre=(34, 34)), blob(centre=(36, 30))])
    try:
        with pytest.raises(ModelError, match="calid-motion-acdc"):
            baseline_interpolate(stack, 2, method="motion")
        export_model(tiny_model(), tmp_path / motion.DEFAULT_MODEL, ["test model"])
        motion.default_model.cache_clear()
        dense = baseline_interpolate(stack, 2, method="motion")
    finally:
        motion.default_model.cache_clear()
    assert dense.shape == (5, 64, 64)
    np.testing.assert_array_equal(dense[::2], stack)


def test_a_run_checkpoint_exports_as_a_model_folder(tmp_path):
    from calid.train.checkpoint import save_checkpoint
    from calid.train.motion import export_checkpoint

    model = tiny_model(seed=7)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "run", model, optimizer, {"step": 12, "config": model.config})
    assert export_checkpoint(tmp_path / "run", tmp_path / "model") == 12
    prev, next_ = blob(), blob(centre=(30, 35))
    np.testing.assert_array_equal(interpolate(from_pretrained(tmp_path / "model"), prev, next_, [0.5]),
                                  interpolate(model, prev, next_, [0.5]))


def test_every_validated_state_is_kept_and_the_best_is_replaced_only_when_improved(tmp_path):
    from calid.train.motion import keep_validated

    first, second = tiny_model(seed=1), tiny_model(seed=2)
    keep_validated(first, tmp_path, 10, ["first"], improved=True)
    folder = keep_validated(second, tmp_path, 20, ["second"], improved=False)
    assert folder == tmp_path / "validated" / "step-000020"
    assert sorted(p.name for p in (tmp_path / "validated").iterdir()) == ["step-000010", "step-000020"]
    prev, next_ = blob(), blob(centre=(30, 35))
    np.testing.assert_array_equal(interpolate(from_pretrained(tmp_path / "best"), prev, next_, [0.5]),
                                  interpolate(first, prev, next_, [0.5]))
    np.testing.assert_array_equal(interpolate(from_pretrained(folder), prev, next_, [0.5]),
                                  interpolate(second, prev, next_, [0.5]))
