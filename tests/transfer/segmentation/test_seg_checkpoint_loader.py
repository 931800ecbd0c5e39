"""mmengine reads local checkpoints through the adapter's weights_only loader: Runner checkpoints (HistoryBuffer,
numpy) load under torch >= 2.6, anything that could run code is refused."""
import collections
import functools

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from asl.cli import UserError
from transfer.segmentation.checkpoint import install_safe_loader, safe_torch_load


@pytest.fixture(autouse=True)
def safe_loader():
    """The loader tools/train_seg.py installs (train.run); it stays installed, as in the tool's process."""
    install_safe_loader()


def runner_like_checkpoint():
    hub = MessageHub("seg_test_hub")
    for i in range(3):
        hub.update_scalar("train/loss", 1.0 / (i + 1))
    hub.update_info("iter", np.int64(7))
    return {"meta": {"iter": 7, "epoch": 0, "seed": np.int64(3), "dataset_meta": {"classes": ("a", "b")}},
            "state_dict": collections.OrderedDict(w=torch.ones(2)),
            "message_hub": hub.state_dict(), "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(0.1)}]}}


def test_runner_checkpoint_loads_with_weights_only(tmp_path):
    torch.save(runner_like_checkpoint(), tmp_path / "iter_7.pth")
    ckpt = _load_checkpoint(str(tmp_path / "iter_7.pth"), map_location="cpu")  # mmengine's own entry point
    buffer = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == pytest.approx((1 + 0.5 + 1 / 3) / 3)
    assert buffer.statistics("min") == pytest.approx(1 / 3)
    assert ckpt["meta"]["iter"] == 7 and torch.equal(ckpt["state_dict"]["w"], torch.ones(2))


class Evil:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("payload", [Evil(), functools.partial(int, "3")], ids=["reduce-print", "partial"])
def test_code_carrying_pickles_are_refused(tmp_path, payload, capsys):
    torch.save({"state_dict": {}, "meta": payload}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="refusing to load"):
        _load_checkpoint(str(tmp_path / "evil.pth"), map_location="cpu")
    assert "this ran" not in capsys.readouterr().out


def test_getattr_is_only_allowed_for_history_buffer_statistics(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, "__init__"))  # an allowed class, but not a statistics method

    torch.save({"x": Sneaky()}, tmp_path / "sneaky.pth")
    with pytest.raises(UserError, match="refusing to load"):
        safe_torch_load(tmp_path / "sneaky.pth")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        _load_checkpoint(str(tmp_path / "none.pth"), map_location="cpu")
    torch.save({"w": torch.ones(1000)}, tmp_path / "ok.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:600])
    with pytest.raises(UserError, match="truncated or corrupt"):
        _load_checkpoint(str(tmp_path / "cut.pth"), map_location="cpu")
