"""Shared pieces of the segmentation-transfer tests: a tiny pretraining checkpoint (ASL, random but complete
weights) in the layout tools/pretrain.py writes, and its mmseg conversion."""
import importlib.util
import os

import pytest
import torch

from asl.checkpoint import save_atomic
from asl.models import PretrainModel

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TINY_CONFIG = os.path.join(os.path.dirname(__file__), "tiny_upernet.py")
# matches tests/transfer/segmentation/tiny_upernet.py
TINY_ENCODER = dict(img_size=64, patch_size=8, embed_dim=32, depth=4, num_heads=2)


def make_pretrain_checkpoint(path, method="asl", seed=0, **encoder):
    """A tiny pretraining checkpoint whose every encoder tensor is random (nothing can hide behind a default)."""
    torch.manual_seed(seed)
    model = PretrainModel(dict(TINY_ENCODER, **encoder), dict(embed_dim=16, depth=1, num_heads=2), method)
    with torch.no_grad():
        for name, p in model.encoder.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name and name.endswith("weight")
                    else 0.1 * torch.randn_like(p))
    save_atomic({"model": model.state_dict(), "config": {"model": {"method": method}}}, path)
    return model.encoder


def convert_to_mmseg(src, dst):
    """tools/convert_ckpt.py SRC --to mmseg -o DST (the file the adapter reads, with its meta)."""
    spec = importlib.util.spec_from_file_location("convert_ckpt_tool", os.path.join(REPO, "tools", "convert_ckpt.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(src), "--to", "mmseg", "-o", str(dst)])
    return torch.load(dst, weights_only=True)["state_dict"]


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """(pretraining checkpoint, its mmseg conversion, the encoder) of the tiny ViT of tiny_upernet.py."""
    folder = tmp_path_factory.mktemp("seg_ckpts")
    encoder = make_pretrain_checkpoint(folder / "pretrain_asl.pth")
    convert_to_mmseg(folder / "pretrain_asl.pth", folder / "asl_mmseg.pth")
    return folder / "pretrain_asl.pth", folder / "asl_mmseg.pth", encoder
