"""Denoiser v3: the guide's latent as an input of the network, from the model to the sampler and training."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from calid.methods.sampling import SamplerSettings, fill_latents, takes_guide  # noqa: E402
from calid.models.denoiser import SliceDenoiser, with_guide_input  # noqa: E402

from tiny_models import TINY_DENOISER  # noqa: E402


def randomised(model: SliceDenoiser) -> SliceDenoiser:
    torch.manual_seed(0)
    with torch.no_grad():  # non-zero residual branches, so the output depends on every input
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    return model.eval()


def inputs(count: int = 3):
    generator = torch.Generator().manual_seed(3)
    noisy, guide = torch.randn(count, 2, 8, 8, generator=generator), torch.randn(count, 2, 8, 8, generator=generator)
    context = torch.randn(count, 4, 2, 8, 8, generator=generator)
    return noisy, torch.full((count,), 5), context, torch.full((count,), 0.25), torch.full((count,), 20.0), guide


def test_added_guide_channels_start_at_zero_weight_so_the_copy_computes_what_the_original_does():
    original = randomised(SliceDenoiser(**TINY_DENOISER))
    copy, kwargs = with_guide_input(original, TINY_DENOISER)
    noisy, t, context, fraction, gap, guide = inputs()
    assert kwargs["guide_input"] and takes_guide(copy) and not takes_guide(original)
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(noisy, t, context, fraction, gap, guide=guide),
                                   original(noisy, t, context, fraction, gap))
        copy.unet.conv_in.weight[:, -2:].normal_(0.0, 0.1)  # once trained, the guide changes the prediction
        assert not torch.allclose(copy(noisy, t, context, fraction, gap, guide=guide), original(noisy, t, context, fraction, gap))


def test_a_guide_reading_network_uses_the_linear_blend_when_no_guide_is_given_and_refuses_a_wrong_shape():
    model = randomised(SliceDenoiser(**TINY_DENOISER, guide_input=True))
    noisy, t, context, fraction, gap, guide = inputs()
    linear = 0.75 * context[:, 1] + 0.25 * context[:, 2]
    with torch.no_grad():
        torch.testing.assert_close(model(noisy, t, context, fraction, gap), model(noisy, t, context, fraction, gap, guide=linear))
        assert not torch.allclose(model(noisy, t, context, fraction, gap), model(noisy, t, context, fraction, gap, guide=guide))
    with pytest.raises(ValueError, match="guide must have the shape"):
        model(noisy, t, context, fraction, gap, guide=guide[:, :1])


class GuideRecorder(SliceDenoiser):
    """A guide-reading denoiser that records the guide each call receives."""

    def __init__(self) -> None:
        super().__init__(**TINY_DENOISER, guide_input=True)
        self.seen: list[torch.Tensor | None] = []

    def forward(self, noisy, timesteps, context, fraction, gap_mm, frames=None, guide=None):
        self.seen.append(guide)
        return super().forward(noisy, timesteps, context, fraction, gap_mm, frames, guide)


@pytest.mark.parametrize("order", ["parallel", "autoregressive"])
def test_the_sampler_hands_each_missing_slice_its_own_guide_at_every_step(order):
    model = randomised(GuideRecorder())
    acquired, guide = torch.randn(1, 3, 2, 8, 8), torch.randn(1, 2, 2, 8, 8)  # 2 gaps, factor 2
    settings = SamplerSettings(steps=2, temperature=0.0, strength=0.5, order=order, chunk=1)
    with torch.no_grad():
        fill_latents(model, acquired, 2, 10.0, settings, torch.Generator().manual_seed(0), guide=guide)
    assert len(model.seen) == 4 and all(g is not None and g.shape == (1, 2, 8, 8) for g in model.seen)
    for slot, calls in enumerate(([0, 1], [2, 3])):  # chunks of one slice, 2 steps each, slices in order
        for call in calls:
            torch.testing.assert_close(model.seen[call][0], guide[0, slot])


def test_guide_dropout_replaces_a_share_of_guides_by_the_linear_blend():
    from calid.train.denoiser import guide_dropout

    guide, context = torch.randn(400, 2, 4, 4), torch.randn(400, 4, 2, 4, 4)
    fraction = torch.rand(400)
    mixed = guide_dropout(guide, context, fraction, 2, 0.25, torch.Generator().manual_seed(0))
    w = fraction.view(-1, 1, 1, 1)
    linear = (1 - w) * context[:, 1] + w * context[:, 2]
    is_linear = (mixed - linear).flatten(1).abs().amax(1) < 1e-6
    is_guide = (mixed - guide).flatten(1).abs().amax(1) == 0
    assert bool((is_linear ^ is_guide).all()) and 0.18 < float(is_linear.float().mean()) < 0.32
    assert torch.equal(guide_dropout(guide, context, fraction, 2, 0.0), guide)
