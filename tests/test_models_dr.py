from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.models import (
    AlexNetDR,
    NetA,
    NetB,
    build_dr_net,
    create_dr_net,
    dr_weight_decay_params,
    grades_from_score,
    list_dr_nets,
    min_input_size,
)
from wslbench.nn import Maxout, RMSPool2d, UntiedBiasConv2d

# Quellec 2017, Table 1, transcribed: (id, layer type, activation maps, window, stride, output
# size) for a 448 input. Net B has no row 18. Dense rows give the number of units.
TABLE_1 = {
    "net_a": [
        (2, "Conv", 32, 5, 2, 224),
        (3, "Conv", 32, 3, 1, 224),
        (4, "MaxPool", 0, 3, 2, 111),
        (5, "Conv", 64, 3, 2, 56),
        (6, "Conv", 64, 3, 1, 56),
        (7, "Conv", 64, 3, 1, 56),
        (8, "MaxPool", 0, 3, 2, 27),
        (9, "Conv", 128, 3, 1, 27),
        (10, "Conv", 128, 3, 1, 27),
        (11, "Conv", 128, 3, 1, 27),
        (12, "MaxPool", 0, 3, 2, 13),
        (13, "Conv", 256, 3, 1, 13),
        (14, "Conv", 256, 3, 1, 13),
        (15, "Conv", 256, 3, 1, 13),
        (16, "MaxPool", 0, 3, 2, 6),
        (17, "Conv", 512, 3, 1, 6),
        (18, "Conv", 512, 3, 1, 6),
        (19, "RMSPool", 0, 3, 3, 2),
        (20, "Dropout", 0, 0, 0, 0),
        (21, "Dense", 1024, 0, 0, 0),
        (22, "Maxout", 512, 0, 0, 0),
        (23, "Dropout", 0, 0, 0, 0),
        (24, "Dense", 1024, 0, 0, 0),
        (25, "Maxout", 512, 0, 0, 0),
        (26, "Dense", 1, 0, 0, 0),
    ],
    "net_b": [
        (2, "Conv", 32, 4, 2, 224),
        (3, "Conv", 32, 4, 1, 225),
        (4, "MaxPool", 0, 3, 2, 112),
        (5, "Conv", 64, 4, 2, 56),
        (6, "Conv", 64, 4, 1, 57),
        (7, "Conv", 64, 4, 1, 56),
        (8, "MaxPool", 0, 3, 2, 27),
        (9, "Conv", 128, 4, 1, 28),
        (10, "Conv", 128, 4, 1, 27),
        (11, "Conv", 128, 4, 1, 28),
        (12, "MaxPool", 0, 3, 2, 13),
        (13, "Conv", 256, 4, 1, 14),
        (14, "Conv", 256, 4, 1, 13),
        (15, "Conv", 256, 4, 1, 14),
        (16, "MaxPool", 0, 3, 2, 6),
        (17, "Conv", 512, 4, 1, 5),
        (19, "RMSPool", 0, 3, 2, 2),
        (20, "Dropout", 0, 0, 0, 0),
        (21, "Dense", 1024, 0, 0, 0),
        (22, "Maxout", 512, 0, 0, 0),
        (23, "Dropout", 0, 0, 0, 0),
        (24, "Dense", 1024, 0, 0, 0),
        (25, "Maxout", 512, 0, 0, 0),
        (26, "Dense", 1, 0, 0, 0),
    ],
}

_TYPES = {
    UntiedBiasConv2d: "Conv",
    nn.Conv2d: "Conv",
    nn.MaxPool2d: "MaxPool",
    nn.AvgPool2d: "MeanPool",
    RMSPool2d: "RMSPool",
    nn.Dropout: "Dropout",
    nn.Linear: "Dense",
    Maxout: "Maxout",
}


def _trace(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Size, torch.Size]]:
    """(module, input shape, output shape) for every table-row layer, in execution order."""
    rows = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: rows.append((m, i[0].shape, o.shape)))
        for m in model.modules()
        if type(m) in _TYPES
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return rows


def _window(m: nn.Module) -> tuple[int, int]:
    k, s = m.kernel_size, m.stride
    k = k[0] if isinstance(k, tuple) else k
    s = s[0] if isinstance(s, tuple) else s
    return k, s


@pytest.mark.parametrize("name", ["net_a", "net_b"])
def test_table1_every_layer_at_448(name):
    model = create_dr_net(name, input_size=448).eval()
    assert model.stages == 4
    out = model(torch.randn(1, 3, 448, 448))
    assert out.shape == (1,)
    rows = _trace(model, torch.randn(1, 3, 448, 448))
    table = TABLE_1[name]
    assert len(rows) == len(table)
    for (module, in_shape, shape), (row, kind, maps, win, stride, size) in zip(rows, table):
        assert _TYPES[type(module)] == kind, row
        if kind in ("Conv", "MaxPool", "RMSPool"):
            assert tuple(shape[2:]) == (size, size), row
            assert _window(module) == (win, stride), row
            if kind == "Conv":
                assert shape[1] == maps, row
            else:
                assert shape[1] == in_shape[1], row
        elif kind == "Dropout":
            assert shape == in_shape, row
        else:
            assert tuple(shape) == (1, maps), row


@pytest.mark.parametrize("name", ["net_a", "net_b"])
def test_untied_biases_leaky_033_and_parameter_count_from_table(name):
    model = create_dr_net(name, input_size=448)
    table = TABLE_1[name]
    # Independent count from Table 1: each conv has C_in·C_out·k² weights and an untied bias
    # per output unit (C_out·S²); dense layers have in·out + out; RMSPool output 512·2·2.
    expected, c_in, features = 0, 3, 0
    for _, kind, maps, win, _, size in table:
        if kind == "Conv":
            expected += c_in * maps * win * win + maps * size * size
            c_in = maps
        elif kind == "RMSPool":
            features = c_in * size * size
        elif kind == "Dense":
            expected += features * maps + maps
            features = maps
        elif kind == "Maxout":
            features = maps
    assert sum(p.numel() for p in model.parameters()) == expected
    layers = list(model.layers)
    assert all(len(list(m.children())) == 0 for m in layers), "layers must be leaf modules"
    for i, m in enumerate(layers):
        if isinstance(m, UntiedBiasConv2d):
            assert m.bias.shape == (m.out_channels, m.output_size, m.output_size)
        if isinstance(m, UntiedBiasConv2d) or (isinstance(m, nn.Linear) and i < len(layers) - 1):
            act = layers[i + 1]
            assert isinstance(act, nn.LeakyReLU) and act.negative_slope == pytest.approx(0.33)
    assert isinstance(layers[-1], nn.Linear) and layers[-1].out_features == 1
    assert [m.p for m in layers if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_alexnet_variant_at_448():
    model = AlexNetDR(448).eval()
    rows = _trace(model, torch.randn(1, 3, 448, 448))
    # (type, window, stride, channels, output size); dense rows: units.
    expected = [
        ("MeanPool", 2, 2, 3, 224),
        ("Conv", 11, 4, 96, 55),
        ("MaxPool", 3, 2, 96, 27),
        ("Conv", 5, 1, 256, 27),
        ("MaxPool", 3, 2, 256, 13),
        ("Conv", 3, 1, 384, 13),
        ("Conv", 3, 1, 384, 13),
        ("Conv", 3, 1, 256, 13),
        ("MaxPool", 3, 2, 256, 6),
    ]
    for (module, _, shape), (kind, win, stride, maps, size) in zip(rows, expected):
        assert (_TYPES[type(module)], *_window(module)) == (kind, win, stride)
        assert tuple(shape[1:]) == (maps, size, size)
    head = [(_TYPES[type(m)], tuple(s)) for m, _, s in rows[len(expected) :]]
    assert head == [
        ("Dropout", (1, 9216)),
        ("Dense", (1, 4096)),
        ("Dropout", (1, 4096)),
        ("Dense", (1, 4096)),
        ("Dense", (1, 1)),
    ]
    assert model.forward_features(torch.zeros(1, 3, 448, 448)).shape == (1, 256, 13, 13)


def test_width_multiplier_scales_channels_and_dense():
    full = NetB(448)
    quarter = NetB(448, width=0.25)
    convs = [m.out_channels for m in quarter.layers if isinstance(m, UntiedBiasConv2d)]
    assert convs == [8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64, 128]
    dense = [m.out_features for m in quarter.layers if isinstance(m, nn.Linear)]
    assert dense == [256, 256, 1]
    tiny = NetA(448, width=0.125)
    assert [m.out_features for m in tiny.layers if isinstance(m, nn.Linear)] == [128, 128, 1]
    n_full = sum(p.numel() for p in full.parameters())
    n_quarter = sum(p.numel() for p in quarter.parameters())
    assert n_quarter < n_full / 4
    assert quarter(torch.randn(2, 3, 448, 448)).shape == (2,)


@pytest.mark.parametrize(
    "name, size, stages",
    [("net_a", 128, 3), ("net_b", 128, 3), ("net_a", 64, 2), ("alexnet", 128, None)],
)
def test_small_inputs_run_with_sub_networks(name, size, stages):
    model = build_dr_net(name, input_size=size, width=0.125).eval()
    assert getattr(model, "stages", None) == stages
    x = torch.randn(3, 3, size, size)
    out = model(x)
    assert out.shape == (3,) and torch.isfinite(out).all()
    feats = model.forward_features(x)
    assert feats.ndim == 4 and feats.shape[0] == 3
    assert torch.allclose(model.forward_head(feats), out)
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sub_network_rule_matches_paper_sizes():
    # Full Table 1 at 448; the paper's sub-networks at 224 and 112 drop the deepest stages.
    assert NetA(448, 0.125).stages == 4
    assert NetA(224, 0.125).stages == 3
    assert NetA(112, 0.125).stages == 2
    # Fewer stages than possible can be asked for explicitly.
    assert NetB(448, 0.125, stages=2).stages == 2


def test_invalid_sizes_raise_clear_errors():
    with pytest.raises(InvalidInputError, match=r"too small.*>= 21 px.*>= 245 px"):
        NetA(16)
    with pytest.raises(InvalidInputError, match="4 stage.*>= 264, got 128"):
        NetB(128, stages=4)
    with pytest.raises(InvalidInputError, match="even input_size >= 126"):
        AlexNetDR(127)
    with pytest.raises(InvalidInputError, match="even input_size"):
        AlexNetDR(64)
    model = NetB(64, 0.125)
    with pytest.raises(InvalidInputError, match=r"expects \(B, 3, 64, 64\)"):
        model(torch.zeros(1, 3, 65, 65))
    with pytest.raises(InvalidInputError):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ConfigError, match="stages"):
        NetA(448, stages=5)
    with pytest.raises(ConfigError, match="width"):
        NetA(448, width=0)


@pytest.mark.parametrize(
    "name, stages", [("net_a", 1), ("net_a", 4), ("net_b", 2), ("alexnet", None)]
)
def test_min_input_size_is_tight(name, stages):
    kwargs = {} if stages is None else {"stages": stages}
    size = min_input_size(name, stages)
    build_dr_net(name, input_size=size, width=0.125, **kwargs)
    with pytest.raises(InvalidInputError):
        build_dr_net(name, input_size=size - 1, width=0.125, **kwargs)


def test_registry():
    assert list_dr_nets() == ["alexnet", "net_a", "net_b"]
    with pytest.raises(ConfigError, match="unknown DR network 'net_c'.*alexnet, net_a, net_b"):
        create_dr_net("net_c")
    with pytest.raises(ConfigError, match="net_a"):
        create_dr_net("net_a", input_size=64, widht=0.5)
    with pytest.raises(ConfigError, match="unknown DR network"):
        min_input_size("vgg")
    assert isinstance(build_dr_net("NET_B", input_size=64, width=0.125), NetB)


def test_grades_from_score_thresholds():
    s = torch.tensor([-1.0, 0.0, 0.49, 0.5, 1.0, 1.5, 2.2, 2.5, 3.49, 3.5, 9.0])
    assert grades_from_score(s).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert grades_from_score(s, thresholds=(1.0,)).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert grades_from_score(torch.tensor([[0.7, 3.0]], dtype=torch.float64)).tolist() == [[1, 3]]
    with pytest.raises(ConfigError, match="increasing"):
        grades_from_score(s, thresholds=(1.5, 0.5))
    with pytest.raises(InvalidInputError, match="NaN"):
        grades_from_score(torch.tensor([float("nan")]))
    with pytest.raises(InvalidInputError, match="float tensor"):
        grades_from_score(torch.tensor([1, 2]))


def test_weight_decay_groups_conv_and_dense_weights_only():
    model = NetA(64, 0.125)
    groups = dr_weight_decay_params(model)
    decayed, others = groups[0]["params"], groups[1]["params"]
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    weights = {
        id(m.weight) for m in model.modules() if isinstance(m, (UntiedBiasConv2d, nn.Linear))
    }
    assert {id(p) for p in decayed} == weights
    assert all(p.ndim == 1 or p.ndim == 3 for p in others)  # dense biases, untied bias maps
    assert len(decayed) + len(others) == len(list(model.parameters()))
    opt = torch.optim.Adam(groups, lr=1e-4)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    opt.step()
    alex = AlexNetDR(128, 0.125)
    alex_groups = dr_weight_decay_params(alex, 1e-3)
    assert len(alex_groups[0]["params"]) == 5 + 3 and alex_groups[0]["weight_decay"] == 1e-3
    with pytest.raises(ConfigError):
        dr_weight_decay_params(model, -1.0)


def test_input_offset_feeds_the_zero_centred_image_and_lrp_sees_it() -> None:
    """``input_offset`` = 0.5: the network computes on ``x − 0.5`` (the paper's ``I_n``),
    outside the state dict, and LRP explains that shifted input."""
    from wslbench.attribution import create_attribution
    from wslbench.nn import InputShift

    torch.manual_seed(0)
    plain = build_dr_net("net_b", input_size=64, width=0.125).eval()
    shifted = build_dr_net("net_b", input_size=64, width=0.125, input_offset=0.5).eval()
    assert set(shifted.state_dict()) == set(plain.state_dict())
    shifted.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(shifted(x), plain(x - 0.5))
    torch.testing.assert_close(shifted.forward_features(x), plain.forward_features(x - 0.5))
    lrp_shifted = create_attribution("lrp", shifted).attribute(x)
    lrp_plain = create_attribution("lrp", plain).attribute(x - 0.5)
    torch.testing.assert_close(lrp_shifted, lrp_plain)
    assert isinstance(next(shifted.children()), InputShift)  # the first leaf LRP meets
    with pytest.raises(ConfigError, match="offset must be a finite number"):
        InputShift(float("nan"))
