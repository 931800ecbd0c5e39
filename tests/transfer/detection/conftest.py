"""Fixtures of the detection tests: dataset roots holding small toy scenes, and a toy pretraining
checkpoint (random weights, the toy encoder's shapes) converted by tools/convert_ckpt.py."""
import os
import sys

import pytest
import torch

from asl.checkpoint import save_atomic
from asl.data.toy import write_toy_scenes
from asl.models import build_pretrain_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: make det_helpers importable
from det_helpers import load_tool


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread while a detection test runs: on a busy shared CPU, detectron2's many small ops with two
    OpenMP threads ran ~6x slower than with one (1.08 vs 6.9 s per toy step, measured here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def det_root(toy_root, tmp_path_factory):
    """A dataset root in the standard layout: <root>/toy_scenes -> the session's toy scenes (24 train, 16 val)."""
    root = tmp_path_factory.mktemp("datasets")
    os.symlink(toy_root, root / "toy_scenes")
    return root


@pytest.fixture(scope="session")
def small_root(tmp_path_factory):
    """A dataset root with very few toy scenes (8 train, 4 val): training tests evaluate in seconds."""
    root = tmp_path_factory.mktemp("small_datasets")
    write_toy_scenes(str(root / "toy_scenes"), num_unlabeled=0, num_train=8, num_val=4, size=64, seed=1)
    return root


@pytest.fixture(scope="session")
def toy_checkpoints(tmp_path_factory):
    """(pretraining checkpoint, its detectron2 conversion by tools/convert_ckpt.py) of a toy ASL model."""
    folder = tmp_path_factory.mktemp("toy_ckpt")
    model = build_pretrain_model("vit_toy_patch8", 64, "asl", decoder=dict(embed_dim=64, depth=1, num_heads=2))
    src = folder / "pretrain.pth"
    save_atomic({"model": model.state_dict(),
                 "config": {"model": {"arch": "vit_toy_patch8", "img_size": 64, "method": "asl"}}}, src)
    dst = folder / "toy_asl_d2.pth"
    load_tool("convert_ckpt").main([str(src), "--to", "detectron2", "-o", str(dst)])
    return src, dst
