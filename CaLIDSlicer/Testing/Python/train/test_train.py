"""Training: data cache and split filtering, example geometry, checkpoints, seeded loops, DDP, CLI."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.models.vae import SliceAutoencoder  # noqa: E402
from calid.methods.sampling import neighbour_indices  # noqa: E402
from calid.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from calid.train.data import Stack, cached_stacks  # noqa: E402
from calid.train.denoiser import context_indices, training_example  # noqa: E402
from calid.train.distributed import DistributedContext  # noqa: E402
from calid.train.loop import LoopSettings, learning_rate, train  # noqa: E402
from calid.train.vae import VaeLossWeights, slice_batch, vae_loss  # noqa: E402

from tiny_models import TINY_VAE  # noqa: E402

SINGLE = DistributedContext(rank=0, world_size=1, device=torch.device("cpu"))


def synthetic_stacks(count: int = 3, seed: int = 0) -> list[Stack]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:20, :20]
    stacks = []
    for index in range(count):
        radius = rng.uniform(3, 7, size=5)
        slices = np.stack([(np.hypot(yy - 10, xx - 10) < r).astype(np.float16) for r in radius])
        stacks.append(Stack(slices, 10.0, f"patient00{index}_ED.nii.gz#0"))
    return stacks


def write_nifti_folder(folder, names):
    import SimpleITK as sitk

    folder.mkdir()
    for name in names:
        image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 900, (4, 20, 24)).astype(np.int16))
        image.SetSpacing((1.5, 1.5, 10.0))
        sitk.WriteImage(image, str(folder / name))
    return folder


def test_cache_reads_only_the_requested_split(tmp_path):
    data = write_nifti_folder(tmp_path / "data", ["patient001_ED.nii.gz", "patient001_ED_gt.nii.gz",
                                                  "patient013_ED.nii.gz", "patient014_ED.nii.gz"])
    train_stacks = cached_stacks([str(data)], "train", tmp_path / "cache")
    val_stacks = cached_stacks([str(data)], "val", tmp_path / "cache")
    assert [s.source for s in train_stacks] == ["patient001_ED.nii.gz#0"]
    assert [s.source for s in val_stacks] == ["patient013_ED.nii.gz#0"]
    assert train_stacks[0].slices.shape == (4, 20, 24) and train_stacks[0].slices.max() <= 2.0
    assert train_stacks[0].slice_spacing == 10.0


@pytest.mark.parametrize("count", [3, 5, 10])
def test_training_examples_lie_strictly_between_acquired_slices(count):
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        first, target, gap = training_example(count, generator)
        assert 2 <= gap <= min(4, count - 1) and first < target < first + gap <= count - 1


@pytest.mark.parametrize("count, gap", [(9, 2), (13, 3), (9, 4)])
def test_training_context_matches_inference_neighbours(count, gap):
    """A dense stack subsampled every ``gap`` slices must see the same neighbours as inference."""
    acquired = (count - 1) // gap + 1
    for first in range(0, count - gap, gap):
        expected = [gap * i for i in neighbour_indices(first // gap, acquired, 2)]
        assert context_indices(first, gap, count, 2) == expected


def test_learning_rate_warms_up_then_decays():
    settings = LoopSettings(steps=100, learning_rate=1.0, warmup=10)
    assert learning_rate(0, settings) == pytest.approx(0.1)
    assert learning_rate(10, settings) == pytest.approx(1.0)
    assert learning_rate(99, settings) < 0.1


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path, model, optimizer, {"step": 7, "seed": 3})
    restored = torch.nn.Linear(3, 2)
    restored_optimizer = torch.optim.AdamW(restored.parameters(), lr=0.5)
    info = load_checkpoint(tmp_path, restored, restored_optimizer)
    assert info == {"step": 7, "seed": 3}
    torch.testing.assert_close(restored.weight, model.weight)
    state, expected = restored_optimizer.state_dict(), optimizer.state_dict()
    torch.testing.assert_close(state["state"][0]["exp_avg"], expected["state"][0]["exp_avg"])
    assert state["param_groups"][0]["lr"] == 0.1
    assert not any(p.suffix == ".pt" or p.suffix == ".pkl" for p in tmp_path.iterdir())


def run_tiny_vae(steps: int, run_dir=None, resume=False, context=SINGLE) -> list[float]:
    torch.manual_seed(0)
    model = SliceAutoencoder(**TINY_VAE)
    stacks = synthetic_stacks()
    settings = LoopSettings(steps=steps, learning_rate=3e-3, warmup=1, log_every=1000, checkpoint_every=2)
    return train(model, lambda g: slice_batch(stacks, 4, 16, g), lambda m, b: vae_loss(m, b, VaeLossWeights()),
                 settings, context, run_dir, seed=0, resume=resume)


def test_seeded_training_is_reproducible_and_reduces_the_loss():
    first, again = run_tiny_vae(8), run_tiny_vae(8)
    assert first == again
    assert np.mean(first[-3:]) < np.mean(first[:3])


def test_resume_continues_from_the_saved_step(tmp_path):
    run_tiny_vae(2, tmp_path)
    assert len(run_tiny_vae(4, tmp_path, resume=True)) == 2
    assert load_checkpoint(tmp_path, SliceAutoencoder(**TINY_VAE), None)["step"] == 4


def _ddp_worker(rank: int, init_file: str, results) -> None:
    from calid.train.distributed import wrap

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        context = DistributedContext(rank=rank, world_size=2, device=torch.device("cpu"))
        torch.manual_seed(0)
        model = wrap(SliceAutoencoder(**TINY_VAE), context)
        stacks = synthetic_stacks()
        settings = LoopSettings(steps=2, learning_rate=1e-3, warmup=1, log_every=1000)
        train(model, lambda g: slice_batch(stacks, 2, 16, g), lambda m, b: vae_loss(m, b, VaeLossWeights()),
              settings, context, None, seed=0)
        results[rank] = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_distributed_training_with_two_cpu_processes_keeps_replicas_in_sync(tmp_path):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
        np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.slow
def test_train_command_writes_a_loadable_model(tmp_path):
    from calid.cli import main
    from calid.models.format import load_model

    data = write_nifti_folder(tmp_path / "data", ["patient001_ED.nii.gz", "patient013_ED.nii.gz"])
    out = tmp_path / "run"
    code = main(["train", "vae", "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2",
                 "--crop", "16", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    model, config = load_model(out / "model")
    assert config.architecture == "calid-vae" and config.kwargs["latent_scale"] > 0
    assert (out / "checkpoint.json").is_file()


def test_decoder_only_training_keeps_latents_unchanged():
    from calid.train.vae_run import freeze_encoder

    torch.manual_seed(0)
    model = SliceAutoencoder(**TINY_VAE)
    freeze_encoder(model)
    images = slice_batch(synthetic_stacks(), 4, 16, torch.Generator().manual_seed(0))
    before_latents, before_decoder = model.encode(images).detach(), model.net.decoder.blocks[-1].conv.weight.clone()
    stacks = synthetic_stacks()
    settings = LoopSettings(steps=3, learning_rate=1e-2, warmup=1, log_every=1000)
    train(model, lambda g: slice_batch(stacks, 4, 16, g), lambda m, b: vae_loss(m, b, VaeLossWeights(), sample=False),
          settings, SINGLE, None, seed=0)
    torch.testing.assert_close(model.encode(images).detach(), before_latents, rtol=0, atol=0)
    assert (model.net.decoder.blocks[-1].conv.weight - before_decoder).abs().max() > 0


def latent_stacks(count: int = 3, seed: int = 0):
    from calid.train.latents import LatentStack

    rng = np.random.default_rng(seed)
    return [LatentStack(rng.normal(size=(6, 4, 5, 7)).astype(np.float16), 10.0, f"patient00{i}_ED.nii.gz#0") for i in range(count)]


def _views(tensor):
    """All 8 flips/quarter turns of the last two axes."""
    for turns in range(4):
        for flip in (False, True):
            view = tensor.flip(-1) if flip else tensor
            yield torch.rot90(view, turns, dims=(-2, -1))


def test_augmented_examples_are_flips_or_turns_of_the_plain_ones_target_and_context_alike():
    from calid.train.denoiser import latent_batch

    stacks = latent_stacks()
    plain = latent_batch(stacks, 1, 6, 2, torch.Generator().manual_seed(3))
    turned = latent_batch(stacks, 1, 6, 2, torch.Generator().manual_seed(3), augment=True)
    torch.testing.assert_close(turned[2:], plain[2:])  # fraction and gap unchanged
    matches = [i for i, (t, c) in enumerate(zip(_views(plain[0]), _views(plain[1])))
               if torch.equal(t, turned[0]) and torch.equal(c, turned[1])]
    assert len(matches) == 1
    seen = set()
    for seed in range(40):  # every layout is drawn
        example = latent_batch(stacks, 1, 6, 2, torch.Generator().manual_seed(seed), augment=True)[0]
        reference = latent_batch(stacks, 1, 6, 2, torch.Generator().manual_seed(seed))[0]
        seen.update(i for i, view in enumerate(_views(reference)) if torch.equal(view, example))
    assert seen == set(range(8))


def test_trajectory_loss_is_zero_only_for_a_perfect_estimate_and_feeds_each_step_the_last():
    from calid.models.denoiser import SliceDenoiser
    from calid.methods.sampling import trailing_schedule
    from calid.train.denoiser import latent_batch, trajectory_loss

    scheduler = trailing_schedule(SliceDenoiser(latent_channels=4, neighbours=2, channels=[8, 8], norm_num_groups=4).make_scheduler(), 2)
    batch = latent_batch(latent_stacks(), 3, 4, 2, torch.Generator().manual_seed(0))
    seen = []

    def perfect(latents, steps, context, fraction, gap_mm):
        seen.append((int(steps[0]), latents.clone()))
        return batch[0]

    loss, _ = trajectory_loss(perfect, scheduler, batch)
    assert float(loss) == 0.0
    assert [step for step, _ in seen] == [999, 499]
    assert float(seen[0][1].abs().max()) == 0.0 and float(seen[1][1].abs().max()) > 0  # zeros, then the DDIM step's result
    zero, _ = trajectory_loss(lambda latents, *rest: torch.zeros_like(latents), scheduler, batch)
    torch.testing.assert_close(zero, (batch[0] ** 2).mean())


@pytest.mark.slow
@pytest.mark.parametrize("texture", [None, "1.0"])
def test_denoiser_fine_tuning_with_the_trajectory_objective_starts_from_the_given_model(tmp_path, monkeypatch, texture):
    import json

    from calid.cli import main
    from calid.models.denoiser import SliceDenoiser
    from calid.train import denoiser_run
    from calid.models.format import ModelConfig, load_model, save_model

    tiny = {"latent_channels": 4, "neighbours": 2, "channels": [8, 8], "num_res_blocks": 1, "norm_num_groups": 4,
            "prediction_type": "sample"}
    torch.manual_seed(0)
    start = tmp_path / "start"
    save_model(SliceDenoiser(**tiny), ModelConfig(name="start", version="1.0.0", kind="denoiser", architecture="calid-denoiser",
                                                  kwargs=tiny), start, "# start\n")
    stacks = latent_stacks()
    monkeypatch.setattr(denoiser_run, "cached_latents", lambda args, split, context: stacks)
    monkeypatch.setattr(denoiser_run, "autoencoder_dir", lambda args: start)  # only its config's name is read
    data = write_nifti_folder(tmp_path / "data", ["patient001_ED.nii.gz"])
    out = tmp_path / "run"
    texture_calls = []
    real_texture = denoiser_run.texture_error
    monkeypatch.setattr(denoiser_run, "texture_error", lambda *a: texture_calls.append(1) or real_texture(*a))
    code = main(["train", "denoiser", "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "16",
                 "--init", str(start), "--objective", "trajectory", "--lr", "1e-5", "--cache-dir", str(tmp_path / "cache")]
                + (["--texture-weight", texture] if texture else []))
    assert code == 0
    assert bool(texture_calls) == bool(texture)  # the texture term is in the loss only when asked for
    tuned, config = load_model(out / "model")
    original, _ = load_model(start)
    assert config.kwargs == tiny
    drift = max(float((p - original.state_dict()[name]).abs().max()) for name, p in tuned.state_dict().items())
    assert 0 < drift < 1e-3  # two small steps away from the given weights, not a fresh network
    with pytest.raises(ValueError, match="prediction sample"):
        main(["train", "denoiser", "--data", str(data), "--out", str(tmp_path / "bad"), "--steps", "1", "--prediction", "epsilon",
              "--objective", "trajectory", "--cache-dir", str(tmp_path / "cache")])


def test_texture_error_rewards_fine_structure_wherever_it_sits():
    from calid.train.denoiser import texture_error

    generator = torch.Generator().manual_seed(0)
    target = torch.randn(2, 4, 16, 16, generator=generator)
    flat = torch.zeros_like(target)
    shifted = torch.roll(target, shifts=(1, 1), dims=(-2, -1))  # the same texture, moved by a pixel
    assert float(texture_error(target, target)) == 0.0
    assert float(texture_error(shifted, target)) < 0.25 * float(texture_error(flat, target))
    assert float(torch.nn.functional.mse_loss(shifted, target)) > float(torch.nn.functional.mse_loss(flat, target))
    estimate = flat.clone().requires_grad_(True)
    texture_error(estimate + 0.01 * torch.randn(estimate.shape, generator=generator), target).backward()
    assert estimate.grad is not None and float(estimate.grad.abs().sum()) > 0


def test_guide_rows_cover_every_training_example_once():
    from calid.train.guides import guide_row, guide_rows

    rows = guide_rows(7)
    assert len(rows) == len(set(rows)) == 5 * 1 + 4 * 2 + 3 * 3  # gaps 2, 3, 4 with 1, 2, 3 targets
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        first, target, gap = training_example(7, generator)
        assert rows[guide_row(7, first, target, gap)] == (first, gap, target - first)


def test_stack_guides_are_the_registration_morphs_of_the_acquired_pair():
    from calid.methods.registration import morph_between
    from calid.train.guides import guide_row, stack_guides

    slices = synthetic_stacks(1)[0].slices.astype(np.float32)
    guides = stack_guides(slices, (1.5, 1.5))
    expected = morph_between(slices[1], slices[4], np.array([1 / 3, 2 / 3]), (1.5, 1.5))
    np.testing.assert_allclose(guides[guide_row(5, 1, 3, 3)], expected[1], atol=1e-6)
    np.testing.assert_allclose(guides[guide_row(5, 0, 1, 2)], morph_between(slices[0], slices[2], np.array([0.5]), (1.5, 1.5))[0],
                               atol=1e-6)


def test_guided_batches_carry_the_guide_of_each_example_turned_like_its_target():
    from calid.train.denoiser import latent_batch
    from calid.train.latents import LatentStack
    from calid.train.guides import guide_row, guide_rows

    stacks = latent_stacks()
    # guide = target + 1 exactly, so a correctly drawn, cropped and turned guide differs from the target by 1
    guides = []
    for stack in stacks:
        rows = guide_rows(stack.latents.shape[0])
        values = np.stack([stack.latents[first + step] for first, _, step in rows]).astype(np.float32) + 1
        guides.append(LatentStack(values.astype(np.float16), stack.slice_spacing, stack.source))
    guides[1] = None  # a stack without guides is never drawn
    assert guide_row(6, 0, 1, 2) == 0
    for seed in range(10):
        target, context, fraction, gap_mm, guide = latent_batch(stacks, 4, 4, 2, torch.Generator().manual_seed(seed),
                                                               augment=True, guides=guides)
        torch.testing.assert_close(guide - target, torch.ones_like(target), atol=2e-2, rtol=0)


def test_guided_trajectory_starts_from_the_noised_guide():
    from calid.methods.calid_settings import DEFAULT_GUIDE_STRENGTH
    from calid.models.denoiser import SliceDenoiser
    from calid.methods.sampling import trailing_schedule
    from calid.train.denoiser import latent_batch, trajectory_loss

    model = SliceDenoiser(latent_channels=4, neighbours=2, channels=[8, 8], norm_num_groups=4)
    scheduler = trailing_schedule(model.make_scheduler(), 2, DEFAULT_GUIDE_STRENGTH)
    batch = latent_batch(latent_stacks(), 3, 4, 2, torch.Generator().manual_seed(0))
    guide = torch.randn_like(batch[0])
    seen = []

    def record(latents, steps, *rest):
        seen.append((int(steps[0]), latents.clone()))
        return batch[0]

    loss, _ = trajectory_loss(record, scheduler, batch, guide=guide)
    assert float(loss) == 0.0 and [step for step, _ in seen] == [499, 249]
    torch.testing.assert_close(seen[0][1], scheduler.alphas_cumprod[499].sqrt() * guide)


@pytest.mark.slow
@pytest.mark.parametrize("guide_input", [False, True])
def test_denoiser_training_with_the_guided_objective_caches_guides_and_trains(tmp_path, guide_input):
    from calid.cli import main
    from calid.models.denoiser import SliceDenoiser
    from calid.models.format import ModelConfig, load_model, save_model

    torch.manual_seed(0)
    vae = save_model(SliceAutoencoder(**TINY_VAE), ModelConfig("tiny-vae", "1.0.0", "vae", "calid-vae", TINY_VAE), tmp_path / "vae", "# t")
    tiny = {"latent_channels": 2, "neighbours": 2, "channels": [8, 8], "num_res_blocks": 1, "norm_num_groups": 4,
            "prediction_type": "sample"}
    start = save_model(SliceDenoiser(**tiny), ModelConfig("start", "1.0.0", "denoiser", "calid-denoiser", tiny), tmp_path / "start", "# s")
    data = write_nifti_folder(tmp_path / "data", ["patient001_ED.nii.gz", "patient013_ED.nii.gz"])
    cache, out = tmp_path / "cache", tmp_path / "run"
    code = main(["train", "denoiser", "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "16",
                 "--vae", str(vae), "--init", str(start), "--objective", "guided", "--lr", "1e-5", "--cache-dir", str(cache)]
                + (["--guide-input"] if guide_input else []))
    assert code == 0
    assert len(list(cache.glob("guides-train-*-every1.npz"))) == 1 and len(list(cache.glob("guides-val-*.npz"))) == 1
    tuned, config = load_model(out / "model")
    original, _ = load_model(start)
    assert tuned.guide_input == guide_input == bool(config.kwargs.get("guide_input"))
    before = original.state_dict()
    assert max(float((p[:, : before[name].shape[1]] if p.ndim > 1 else p).sub(before[name]).abs().max())
               for name, p in tuned.state_dict().items()) > 0
    if guide_input:  # the guide's channels, added at zero weight, are trained like every other weight
        assert float(tuned.state_dict()["unet.conv_in.weight"][:, -2:].abs().max()) > 0


def test_guide_input_training_needs_the_guided_objective(tmp_path):
    from calid.cli import main

    with pytest.raises(ValueError, match="--guide-input needs --objective guided"):
        main(["train", "denoiser", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--guide-input",
              "--objective", "trajectory", "--cache-dir", str(tmp_path / "cache")])


def test_a_new_denoiser_reads_as_many_latent_channels_as_its_autoencoder_makes(tmp_path):
    import argparse

    from calid.models.denoiser import SliceDenoiser
    from calid.models.format import ModelConfig, save_model
    from calid.train.denoiser_run import initial_denoiser

    wide = {**TINY_VAE, "latent_channels": 3}
    vae = save_model(SliceAutoencoder(**wide), ModelConfig("wide-vae", "1.0.0", "vae", "calid-vae", wide), tmp_path / "vae", "# t")
    args = argparse.Namespace(vae=vae, init=None, prediction="sample", guide_input=False, channels=[16, 16])
    model, kwargs = initial_denoiser(args)
    assert model.latent_channels == kwargs["latent_channels"] == 3

    four = {"latent_channels": 4, "neighbours": 2, "channels": [8, 8], "num_res_blocks": 1, "norm_num_groups": 4,
            "prediction_type": "sample"}
    start = save_model(SliceDenoiser(**four), ModelConfig("start", "1.0.0", "denoiser", "calid-denoiser", four), tmp_path / "start", "# s")
    with pytest.raises(ValueError, match="reads 4 latent channels but the autoencoder .* makes only 3"):
        initial_denoiser(argparse.Namespace(**{**vars(args), "init": start}))


def test_a_denoiser_grown_to_more_latent_channels_predicts_the_old_ones_as_before():
    from calid.models.denoiser import SliceDenoiser, with_latent_channels

    torch.manual_seed(0)
    kwargs = {"latent_channels": 2, "neighbours": 2, "channels": [8, 8], "num_res_blocks": 1, "norm_num_groups": 4}
    model = SliceDenoiser(**kwargs).eval()
    with torch.no_grad():  # non-zero output layer, so the prediction depends on every input
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    grown, grown_kwargs = with_latent_channels(model, kwargs, 3)
    assert grown.latent_channels == grown_kwargs["latent_channels"] == 3
    noisy, context = torch.randn(2, 2, 8, 8), torch.randn(2, 4, 2, 8, 8)
    timesteps, fraction, gap = torch.tensor([10, 500]), torch.tensor([0.25, 0.5]), torch.tensor([20.0, 10.0])
    with torch.no_grad():
        before = model(noisy, timesteps, context, fraction, gap)
        extra = torch.randn(2, 1, 8, 8), torch.randn(2, 4, 1, 8, 8)  # whatever the new channel holds
        after = grown.eval()(torch.cat([noisy, extra[0]], 1), timesteps, torch.cat([context, extra[1]], 2), fraction, gap)
    torch.testing.assert_close(after[:, :2], before)
    assert float(after[:, 2:].abs().max()) == 0.0  # the new channel starts at zero
    with pytest.raises(ValueError, match="not shrink"):
        with_latent_channels(model, kwargs, 1)
