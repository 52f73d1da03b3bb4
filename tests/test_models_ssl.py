from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses import CombinedLoss, autoencoder_loss
from wslbench.models import (
    AECL1,
    SSL_MODELS,
    AERes18,
    SSLClassifierHead,
    create_ssl_model,
    list_ssl_models,
)
from wslbench.nn import ResNet
from wslbench.training import MixedBatchSampler


def _count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("upsampling", ["unpool", "stride"])
@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
def test_aecl1_shapes(upsampling: str, size: tuple[int, int]) -> None:
    model = AECL1(base_width=2, num_pools=4, upsampling=upsampling)
    x = torch.randn(2, 3, *size)
    recon, logits = model(x)
    assert recon.shape == x.shape
    assert logits.shape == (2,)
    assert model.reconstruct(x).shape == x.shape
    assert model.classify(x).shape == (2,)
    # 4 pools -> /16; last encoder layer has 8 * base_width channels.
    assert model.encode(x).shape == (2, 16, size[0] // 16, size[1] // 16)


def test_aecl1_layer_counts_follow_section_4_2() -> None:
    model = AECL1(base_width=2, num_pools=8)
    assert _count(model.encoder, nn.Conv2d) == 8
    assert _count(model.decoder, nn.ConvTranspose2d) == 8
    assert _count(model.encoder, nn.BatchNorm2d) == 8
    assert _count(model.decoder, nn.BatchNorm2d) == 7  # none after the last deconvolution
    assert model.encoder.pooled == (True,) * 8
    assert model.downsampling == 256
    x = torch.randn(2, 3, 256, 256)  # paper-literal: a pool after each of the 8 layers
    assert model.encode(x).shape == (2, 16, 1, 1)
    assert model.reconstruct(x).shape == x.shape
    assert AECL1(base_width=2, num_pools=4).encoder.pooled == (False, True) * 4


def test_aecl1_unpool_decoder_uses_encoder_indices() -> None:
    torch.manual_seed(0)
    model = AECL1(base_width=2, num_pools=1)  # train mode: BN keeps activations O(1)
    x = torch.randn(1, 3, 8, 8)
    z, indices = model.encoder.forward_with_indices(x)
    assert [i is not None for i in indices] == [False] * 7 + [True]
    # Max-unpooling puts values only where the encoder's maxima were: the first decoder
    # layer's input has exactly one non-zero per 2x2 window, at the recorded index.
    unpooled = model.decoder.unpool(z, indices[7])
    assert (unpooled != 0).sum() <= z.numel()
    assert unpooled.flatten(2).gather(2, indices[7].flatten(2)).equal(z.flatten(2))
    torch.testing.assert_close(model.reconstruct(x), model.decoder(z, indices))
    # The same code with another image's pooling positions decodes differently.
    _, other = model.encoder.forward_with_indices(torch.randn(1, 3, 8, 8))
    assert not torch.allclose(model.decoder(z, other), model.decoder(z, indices))
    with pytest.raises(InvalidInputError, match="pooling indices"):
        model.decoder(z)


def test_aeres18_shapes_and_encoder_is_the_resnet() -> None:
    model = AERes18(base_width=4)
    assert isinstance(model.encoder, ResNet) and model.encoder.depth == 18
    assert model.encoder.classifier is None  # "all the layers of ResNet18 except the last"
    assert _count(model.decoder, nn.ConvTranspose2d) == 9
    assert _count(model.decoder, nn.BatchNorm2d) == 8
    for size in [(64, 64), (96, 128)]:
        x = torch.randn(2, 3, *size)
        recon, logits = model(x)
        assert recon.shape == x.shape and logits.shape == (2,)
        assert model.encode(x).shape == (2, 32, size[0] // 32, size[1] // 32)
        torch.testing.assert_close(model.encode(x), model.encoder.forward_features(x))


def test_bad_sizes_name_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"multiples of .* 32 \(32, 64, 96"):
        AERes18(base_width=2)(torch.randn(1, 3, 60, 64))
    with pytest.raises(InvalidInputError, match=r"multiples of .* 16 \(16, 32, 48"):
        AECL1(base_width=2, num_pools=4).reconstruct(torch.randn(1, 3, 64, 40))
    with pytest.raises(InvalidInputError, match=r"\(B, 3, H, W\)"):
        AECL1(base_width=2, num_pools=4).classify(torch.randn(1, 1, 64, 64))
    with pytest.raises(InvalidInputError):
        AERes18(base_width=2).encode(torch.randn(3, 64, 64))


def test_bad_configs() -> None:
    with pytest.raises(ConfigError, match="num_pools"):
        AECL1(num_pools=9)
    with pytest.raises(ConfigError, match="unpool, stride"):
        AECL1(upsampling="bilinear")
    with pytest.raises(ConfigError, match="base_width"):
        AERes18(base_width=0)


def test_weight_tying_shares_storage_and_updates_both() -> None:
    torch.manual_seed(0)
    tied = AECL1(base_width=2, num_pools=4, tie_weights=True)
    untied = AECL1(base_width=2, num_pools=4, tie_weights=False)
    pairs = list(zip(tied.encoder.convs, reversed(tied.decoder.deconvs)))
    for conv, deconv in pairs:
        assert deconv.weight.data_ptr() == conv.weight.data_ptr()
    for conv, deconv in zip(untied.encoder.convs, reversed(untied.decoder.deconvs)):
        assert deconv.weight.data_ptr() != conv.weight.data_ptr()
    conv_weights = sum(c.weight.numel() for c in tied.encoder.convs)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == conv_weights

    before = [deconv.weight.detach().clone() for _, deconv in pairs]
    opt = torch.optim.SGD(tied.parameters(), lr=0.1)
    x = torch.randn(2, 3, 32, 32)
    autoencoder_loss(tied.reconstruct(x), x).backward()
    opt.step()
    for (conv, deconv), old in zip(pairs, before):
        assert not torch.equal(deconv.weight, old)
        assert torch.equal(conv.weight, deconv.weight)


def test_classifier_head_hand_computation() -> None:
    head = SSLClassifierHead(2)
    with torch.no_grad():
        head.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]))
        head.fc1.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))
        head.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        head.fc2.bias.fill_(-1.0)
    feats = torch.zeros(1, 2, 2, 2)
    feats[0, 0] = torch.tensor([[1.0, 3.0], [0.0, 0.0]])  # mean 1
    feats[0, 1] = torch.tensor([[2.0, 2.0], [-2.0, 6.0]])  # mean 2
    # hidden = (1, 2, 3, 1); logit = 1 + 4 + 9 + 4 - 1 = 17; any spatial size works.
    torch.testing.assert_close(head(feats), torch.tensor([17.0]))
    torch.testing.assert_close(head(feats.repeat_interleave(3, dim=-1)), torch.tensor([17.0]))


def test_registry() -> None:
    assert list_ssl_models() == ["aecl1", "aeres18"]
    assert isinstance(create_ssl_model("aecl1", base_width=2, num_pools=3), AECL1)
    assert isinstance(create_ssl_model("AERes18", base_width=2), AERes18)
    with pytest.raises(ConfigError, match="aecl1, aeres18"):
        create_ssl_model("vae")
    with pytest.raises(ConfigError, match="aeres18"):
        create_ssl_model("aeres18", width=2)  # misspelled keyword fails loudly
    assert len(SSL_MODELS) == 2


@pytest.mark.parametrize("name", ["aecl1", "aeres18"])
def test_contract_every_parameter_gets_a_gradient(name: str) -> None:
    kw = {"base_width": 2, "num_pools": 5} if name == "aecl1" else {"base_width": 2}
    model = create_ssl_model(name, **kw)
    x = torch.randn(2, 3, 64, 64)
    recon, logits = model(x)
    assert torch.isfinite(recon).all() and torch.isfinite(logits).all()
    (recon.square().mean() + logits.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_tiny_combined_training_lowers_reconstruction_loss() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    # Smooth images (low-frequency noise upsampled) so a tiny autoencoder can fit them.
    smooth = {"size": 16, "mode": "bilinear"}
    labelled = nn.functional.interpolate(torch.randn(8, 3, 4, 4, generator=gen), **smooth)
    unlabelled = nn.functional.interpolate(torch.randn(12, 3, 4, 4, generator=gen), **smooth)
    targets = (labelled.mean(dim=(1, 2, 3)) > 0).float()
    model = AECL1(base_width=4, num_pools=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = CombinedLoss(lam=0.1)
    sampler = MixedBatchSampler(8, 12, batch_size=4, seed=0)

    both = torch.cat([labelled, unlabelled])

    def l_ae() -> float:
        with torch.no_grad():
            return autoencoder_loss(model.reconstruct(both), both).item()

    start = l_ae()
    steps = 0
    while steps < 30:
        for batch in sampler:
            idx = list(batch.indices)
            if batch.kind == "labelled":
                recon, logits = model(labelled[idx])
                total, _ = loss_fn(recon, labelled[idx], logits, targets[idx])
            else:
                total, _ = loss_fn(model.reconstruct(unlabelled[idx]), unlabelled[idx])
            opt.zero_grad()
            total.backward()
            opt.step()
            steps += 1
    assert steps == 30  # 5 batches per epoch, 6 epochs
    end = l_ae()
    assert end < 0.5 * start
    assert end < 0.9 * both.square().mean().item()  # better than predicting zeros


def test_aeres18_imagenet_normalisation_is_inside_the_encoder():
    from wslbench.models.ssl import IMAGENET_MEAN, IMAGENET_STD, AERes18

    torch.manual_seed(0)
    model = AERes18(base_width=4, imagenet_normalize=True).eval()
    plain = AERes18(base_width=4).eval()
    plain.load_state_dict(model.state_dict())  # the statistics are not weights
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(model.encode(x), plain.encode((x - mean) / std), atol=1e-6)
    assert not torch.allclose(model.encode(x), plain.encode(x), atol=1e-3)
    assert model.reconstruct(x).shape == x.shape
    with pytest.raises(ConfigError, match="RGB"):
        AERes18(in_channels=1, imagenet_normalize=True)
