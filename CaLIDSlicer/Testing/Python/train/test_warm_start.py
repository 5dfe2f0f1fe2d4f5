"""Starting a wider autoencoder from a trained one: the old outputs are kept, the new channels can learn."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.models.vae import SliceAutoencoder  # noqa: E402
from calid.train.warm_start import grow_into, trained_tensors  # noqa: E402

KWARGS = {"channels": (16, 16), "num_res_blocks": 1, "norm_num_groups": 8}


def test_more_latent_channels_decode_the_old_latents_exactly_and_receive_gradients():
    torch.manual_seed(0)
    small = SliceAutoencoder(latent_channels=2, **KWARGS).eval()
    wide = SliceAutoencoder(latent_channels=5, **KWARGS).eval()
    counts = grow_into(wide, small.state_dict())
    assert counts["grown"] >= 4 and counts["copied"] > 10
    images = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        old = small.encode(images)
        new = wide.encode(images)
        torch.testing.assert_close(new[:, :2], old)  # the trained latent channels are the same numbers
        torch.testing.assert_close(wide.decode(new), small.decode(old), atol=1e-5, rtol=1e-5)  # new channels unread so far
    wide.train()
    reconstruction, _, _ = wide(images, sample=False)
    (reconstruction - images).pow(2).mean().backward()
    decoder_input = wide.net.decoder.blocks[0].conv.weight
    assert decoder_input.grad[:, 2:].abs().sum() > 0  # the zeroed columns for the new channels learn


def test_a_narrower_network_takes_only_the_tensors_that_fit():
    torch.manual_seed(1)
    small = SliceAutoencoder(latent_channels=2, **KWARGS)
    wide = SliceAutoencoder(latent_channels=5, **KWARGS)
    before = {k: v.clone() for k, v in small.state_dict().items()}
    counts = grow_into(small, wide.state_dict())  # shrinking is not growing: the latent layers are left alone
    assert counts["grown"] == 0
    after = small.state_dict()
    assert torch.equal(after["net.post_quant_conv.conv.weight"], before["net.post_quant_conv.conv.weight"])
    assert torch.equal(after["net.decoder.blocks.1.conv1.conv.weight"], wide.state_dict()["net.decoder.blocks.1.conv1.conv.weight"])


def test_a_folder_without_weights_is_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="point --init at a model folder"):
        trained_tensors(tmp_path)
