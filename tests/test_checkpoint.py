from __future__ import annotations

import pickle

import pytest
import torch

from wslbench.checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from wslbench.errors import DataFormatError, RunError, UnsafeFileError
from wslbench.nn import ResNet


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_roundtrip_and_no_silent_overwrite(tmp_path):
    net = ResNet(18, base_width=4)
    path = save_checkpoint({"state_dict": net.state_dict(), "iteration": 3}, tmp_path / "c.pt")
    with pytest.raises(RunError, match="already exists"):
        save_checkpoint({"x": torch.zeros(1)}, path)
    other = ResNet(18, base_width=4)
    other.load_user_weights(path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    assert load_checkpoint(path)["iteration"] == 3


def test_pickle_bearing_file_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": _Evil()}, path)
    with pytest.raises(UnsafeFileError, match="weights_only"):
        load_checkpoint(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises((UnsafeFileError, DataFormatError)):
        load_state_dict(raw)


def test_checkpoints_carry_provenance_and_bare_state_dicts_stay_bare(tmp_path):
    import torch as _torch

    from wslbench import __version__

    net = ResNet(18, base_width=4)
    meta = load_checkpoint(save_checkpoint({"state_dict": net.state_dict()}, tmp_path / "c.pt"))
    assert meta["provenance"]["wslbench"] == __version__
    assert meta["provenance"]["torch"] == _torch.__version__
    bare = save_checkpoint(net.state_dict(), tmp_path / "bare.pt")
    assert "provenance" not in load_checkpoint(bare) and load_state_dict(bare).keys() == net.state_dict().keys()
