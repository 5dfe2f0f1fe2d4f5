"""The autoencoder round trip (``calid evaluate --methods autoencoder``): what CaLID's decoder can draw at best."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid import cli  # noqa: E402
from calid.errors import InputError  # noqa: E402
from calid.evaluation.datasets import find_cases  # noqa: E402
from calid.evaluation.evaluate import evaluate  # noqa: E402
from calid.io.volume import Volume  # noqa: E402
from calid.methods.autoencoder_roundtrip import load_autoencoder, round_trip, round_trip_volume  # noqa: E402
from calid.models.denoiser import SliceDenoiser  # noqa: E402
from calid.models.format import ModelConfig, save_model  # noqa: E402
from calid.models.preprocess import denormalise, intensity_scale, normalise  # noqa: E402
from calid.models.vae import SliceAutoencoder  # noqa: E402

from tiny_models import TINY_DENOISER, TINY_VAE  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(3)
    save_model(SliceAutoencoder(**TINY_VAE), ModelConfig("tiny-vae", "1.0.0", "vae", "calid-vae", TINY_VAE), root / "tiny-vae", "# t")
    config = ModelConfig("tiny-den", "1.0.0", "denoiser", "calid-denoiser", TINY_DENOISER, {"autoencoder": "tiny-vae"})
    return save_model(SliceDenoiser(**TINY_DENOISER), config, root / "tiny-den", "# tiny")


def test_round_trip_is_decode_of_encode_of_each_slice_in_input_units(model_dir):
    autoencoder, identity = load_autoencoder(model_dir, "cpu")
    assert identity["name"] == "tiny-vae"
    array = np.random.default_rng(0).uniform(0, 500, (2, 3, 16, 12)).astype(np.float32)
    out = round_trip(array, autoencoder)
    assert out.shape == array.shape and out.dtype == np.float32
    scale = intensity_scale(array)  # one scale for the whole input, as the calid method uses
    with torch.no_grad():
        one = torch.from_numpy(normalise(array[1, 2:3], scale))[:, None]
        expected = denormalise(autoencoder.decode(autoencoder.encode(one), (16, 12))[:, 0].numpy(), scale)
    np.testing.assert_allclose(out[1, 2], expected[0], rtol=1e-4, atol=1e-3)
    assert not np.allclose(out[0, 0], out[0, 1])  # every slice is its own round trip, not a copy


def test_round_trip_volume_keeps_geometry_and_marks_every_slice(model_dir):
    volume = Volume(array=np.random.default_rng(1).uniform(0, 1, (4, 16, 16)).astype(np.float32),
                    spacing=(1.5, 1.25, 8.0), origin=(1.0, 2.0, 3.0))
    decoded, identity, seconds, device = round_trip_volume(volume, "cpu", model_dir)
    assert decoded.array.shape == volume.array.shape
    assert decoded.spacing == volume.spacing and decoded.origin == volume.origin
    assert decoded.synthesized == (0, 1, 2, 3) and identity["kind"] == "vae" and device == "cpu" and seconds >= 0
    assert not np.array_equal(decoded.array, volume.array)


def test_evaluate_refuses_an_unknown_method_before_any_case_is_loaded(tmp_path):
    cases = find_cases("phantom", "test", phantom_count=1, phantom_options={"size": (32, 32)})
    with pytest.raises(InputError, match="unknown method.*'autoencodr'.*autoencoder"):
        evaluate(cases, ["linear", "autoencodr"], dice=False)


def test_evaluate_scores_the_round_trip_beside_the_methods(tmp_path):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    out = tmp_path / "ae.json"
    assert cli.main(["evaluate", "phantom", "--methods", "autoencoder,nearest", "--phantom-count", "1", "--phantom-size", "64",
                     "--device", "cpu", "--progress", "none", "--no-dice", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    psnr = {s["method"]: s["psnr"] for s in record["summary"]}
    # decoding the real slices beats copying the nearest neighbour (it sees the slice it rebuilds)
    assert psnr["autoencoder"] > psnr["nearest"] + 3
    assert [m["kind"] for m in record["provenance"]["autoencoder"]["models"]] == ["vae"]
    assert list(record["provenance"]["autoencoder"]["stage_seconds"]) == ["round trip"]
