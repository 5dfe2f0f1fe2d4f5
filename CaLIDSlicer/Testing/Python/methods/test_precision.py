"""The networks' arithmetic (``precision``): what "auto" picks, its checks, CLI and API, and what bfloat16 changes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.errors import InputError  # noqa: E402
from calid.methods.precision import full_precision, network_autocast, resolve_precision  # noqa: E402


def test_explicit_precisions_are_kept_and_auto_follows_the_hardware(monkeypatch):
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_precision("auto", "cpu") == ("bfloat16" if torch.backends.mkldnn.is_available() else "float32")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_precision("auto", "cpu") == "float32"  # emulated bfloat16 would be slower, not faster
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", "cpu") == "float32"  # a torch that cannot tell: the safe choice


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(InputError, match="precision must be one of auto, float32, bfloat16, not 'half'"):
        resolve_precision("half", "cpu")


def test_the_autocast_region_computes_convolutions_in_bfloat16_and_full_precision_turns_it_off():
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 8, 8)
    with network_autocast("cpu", "bfloat16"):
        assert conv(x).dtype == torch.bfloat16
        with full_precision("cpu"):
            assert conv(x).dtype == torch.float32
    with network_autocast("cpu", "float32"):
        assert conv(x).dtype == torch.float32


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "calid", "precision": "fp16"}, "precision must be one of auto, float32, bfloat16"),
    ({"method": "linear", "precision": "bfloat16"}, "precision apply to the calid method only"),
])
def test_bad_settings_are_refused_before_any_work(oblique_stack, kwargs, message):
    from calid.methods.reconstruction import reconstruct

    with pytest.raises(InputError, match=message):
        reconstruct(oblique_stack, factor=2, **kwargs)


def test_cli_option_reaches_reconstruct_evaluate_and_bench():
    from calid.cli import build_parser
    from calid.commands.reconstruct import reconstruction_kwargs

    parser = build_parser()
    kwargs = reconstruction_kwargs(parser.parse_args(["reconstruct", "in.nii.gz", "-o", "o.nii.gz", "--precision", "float32"]))
    assert kwargs["precision"] == "float32"
    assert reconstruction_kwargs(parser.parse_args(["reconstruct", "in.nii.gz", "-o", "o.nii.gz"]))["precision"] is None
    assert parser.parse_args(["evaluate", "phantom", "--precision", "bfloat16"]).precision == "bfloat16"
    assert parser.parse_args(["bench", "--precision", "float32"]).precision == "float32"
    with pytest.raises(SystemExit):
        parser.parse_args(["reconstruct", "in.nii.gz", "-o", "o.nii.gz", "--precision", "double"])


def test_bfloat16_changes_synthesised_slices_by_rounding_only_and_never_acquired_ones():
    """Both arithmetics on the same phantom: acquired slices bit-exact, synthesised ones within bf16 rounding."""
    from calid.methods.reconstruction import calid_model_available, reconstruct
    from calid.phantom.generator import make_phantom

    if not calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    stack = make_phantom(n_slices=4, n_frames=1, size=(48, 48), pixel_spacing=2.0, seed=4, as_3d=True).image
    exact = reconstruct(stack, factor=2, method="calid", device="cpu", guide="none", precision="float32")
    rounded = reconstruct(stack, factor=2, method="calid", device="cpu", guide="none", precision="bfloat16")
    assert (exact.sampler["precision"], rounded.sampler["precision"]) == ("float32", "bfloat16")
    np.testing.assert_array_equal(rounded.volume.array[::2], stack.array)
    made_exact = exact.volume.array[1::2].astype(float)
    made_rounded = rounded.volume.array[1::2].astype(float)
    difference = np.sqrt(np.mean((made_rounded - made_exact) ** 2)) / made_exact.std()
    assert 0 < difference < 0.05  # bfloat16 did run (not bit-equal), and moved the slices by rounding only



def test_the_time_estimate_follows_the_arithmetic(monkeypatch):
    from calid.methods.estimate import BFLOAT16_CPU_SCALE, estimate, workload_for

    shape = (10, 256, 256)
    exact = workload_for(shape, 8.0, factor=4, method="calid", mode="3d", precision="float32")
    rounded = workload_for(shape, 8.0, factor=4, method="calid", mode="3d", precision="bfloat16")
    assert (exact.precision, rounded.precision) == ("float32", "bfloat16")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert workload_for(shape, 8.0, factor=4, method="calid", mode="3d").precision == "float32"
    slow, fast = estimate(exact, "cpu"), estimate(rounded, "cpu")
    for stage, key in (("encode", "encode"), ("sample", "sample_3d"), ("decode", "decode")):
        assert fast.stages[stage] == pytest.approx(slow.stages[stage] * BFLOAT16_CPU_SCALE[key])
    assert fast.stages["read and write"] == slow.stages["read and write"]  # no network there
    assert slow.stages["register"] > fast.stages["register"] > 0.5 * slow.stages["register"]  # demons stay float32
    with pytest.raises(InputError, match="precision must be one of"):
        workload_for(shape, 8.0, factor=4, method="calid", mode="3d", precision="fp8")


@pytest.mark.parametrize("precision, dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_training_runs_its_forward_pass_at_the_chosen_precision_and_learns(precision, dtype):
    from calid.train.distributed import DistributedContext
    from calid.train.loop import LoopSettings, train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))
    target = torch.rand(4, 1, 16, 16)
    seen = []

    def loss_of(network, batch):
        out = network(batch)
        seen.append(out.dtype)
        return (out.float() - batch).pow(2).mean(), {}

    settings = LoopSettings(steps=40, learning_rate=1e-2, warmup=1, log_every=1000, checkpoint_every=1000, precision=precision)
    losses = train(model, lambda generator: target, loss_of, settings, DistributedContext(0, 1, torch.device("cpu")), None, 0)
    assert set(seen) == {dtype}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights themselves stay float32
    assert losses[-1] < 0.5 * losses[0]


def test_calid_env_says_what_auto_means_on_this_machine(monkeypatch):
    from calid.commands.env import collect

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert collect()["precision_auto"]["cpu"] == "float32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert collect()["precision_auto"]["cpu"] == ("bfloat16" if torch.backends.mkldnn.is_available() else "float32")
