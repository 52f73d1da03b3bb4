"""One factory for every architecture of the five papers (issue 18)."""

from __future__ import annotations

import pytest
import torch

from wslbench.cs import ProjectionCodec
from wslbench.errors import ConfigError
from wslbench.models import create_model, list_models

SMALL = {
    "net_a": ({"input_size": 64, "width": 0.125}, (2, 3, 64, 64), (2,)),  # one grade score each
    "net_b": ({"input_size": 64, "width": 0.125}, (2, 3, 64, 64), (2,)),
    "aecl1": ({"base_width": 4, "num_pools": 2}, (2, 3, 32, 32), None),
    "aeres18": ({"base_width": 4}, (2, 3, 32, 32), None),
    "wsl": ({"head": "lse", "base_width": 4, "head_kwargs": {"q": 5.0}}, (2, 3, 32, 32), None),
    "unet": ({"num_classes": 2, "depth": 2, "base_width": 4}, (2, 3, 32, 32), (2, 2, 32, 32)),
    "density_net": ({"base_width": 4}, (2, 3, 32, 32), (2, 1, 32, 32)),
    "mri_cnn": ({"config": "smoke", "input_shape": (16, 20, 16)}, (2, 1, 16, 20, 16), (2, 2)),
    "resnet": ({"depth": 18, "base_width": 4}, None, None),
}


def test_every_paper_architecture_is_listed():
    assert set(list_models()) == set(SMALL) | {"alexnet", "cnncs", "ecnncs1", "ecnncs2"}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_model_builds_and_runs(name):
    kwargs, shape, out_shape = SMALL[name]
    model = create_model(name, **kwargs).eval()
    assert isinstance(model, torch.nn.Module) and sum(p.numel() for p in model.parameters()) > 0
    if shape is not None:
        with torch.no_grad():
            out = model(torch.rand(shape))
        if out_shape is not None:
            assert tuple(out.shape) == out_shape


@pytest.mark.parametrize("variant", ["cnncs", "ecnncs1", "ecnncs2"])
def test_cnncs_variants_take_a_codec(variant):
    codec = ProjectionCodec(height=32, width=32, n_lines=4, code_length=24)
    model = create_model(variant, codec=codec, depth=18, base_width=4)
    assert model.variant == variant


def test_unknown_names_and_misspelled_arguments_say_what_is_expected():
    with pytest.raises(ConfigError, match="unknown model 'net_c'; expected one of: aecl1"):
        create_model("net_c")
    with pytest.raises(ConfigError, match="model 'unet'"):
        create_model("unet", widht=4)
