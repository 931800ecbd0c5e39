"""tools/convert_ckpt.py: conversions with a full report, and user mistakes as one-line errors (exit status 2)."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from asl.checkpoint import load_encoder, save_atomic
from asl.cli import UserError
from asl.models import PretrainModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "convert_ckpt.py")
spec = importlib.util.spec_from_file_location("convert_ckpt", TOOL)
convert_ckpt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert_ckpt)


@pytest.fixture(scope="module")
def pretrain_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = PretrainModel(dict(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2),
                          dict(embed_dim=32, depth=1, num_heads=2), "asl")
    path = tmp_path_factory.mktemp("run") / "last.pth"
    save_atomic({"model": model.state_dict(), "epoch": 1, "iteration": 5,
                 "config": {"model": {"arch": "custom", "img_size": 32, "method": "asl"}}}, path)
    return path, model.encoder.state_dict()


def test_detectron2_conversion_reports_every_key(pretrain_ckpt, tmp_path, capsys):
    src, encoder = pretrain_ckpt
    convert_ckpt.main([str(src), "--to", "detectron2", "-o", str(tmp_path / "d2.pth")])
    report = capsys.readouterr().out
    for line in ("mapped (27 tensors):", "encoder.blocks.*.attn.qkv.weight -> backbone.net.blocks.*.attn.qkv.weight",
                 "dropped on purpose (", "decoder.* (", "enhance.* (", "encoder.cls_token (1): ViTDet",
                 "initialised by the target:", "backbone.net.blocks.*.attn.rel_pos_[hw]", "pretrain_img_size=32",
                 f"wrote {tmp_path / 'd2.pth'} (27 tensors, detectron2)"):
        assert line in report, line
    weights = torch.load(tmp_path / "d2.pth", weights_only=True)["model"]
    assert torch.equal(weights["backbone.net.blocks.1.mlp.fc1.weight"], encoder["blocks.1.mlp.fc1.weight"])


def test_mmseg_then_back_to_timm_safetensors(pretrain_ckpt, tmp_path, capsys):
    src, encoder = pretrain_ckpt
    convert_ckpt.main([str(src), "--to", "mmseg", "--final-norm", "--img-size", "64", "-o", str(tmp_path / "m.pth")])
    assert "pos_embed resized (bicubic) from 2x2 to 4x4" in capsys.readouterr().out
    convert_ckpt.main([str(tmp_path / "m.pth"), "--to", "timm", "-o", str(tmp_path / "t.safetensors")])
    assert "source: mmseg checkpoint" in capsys.readouterr().out
    sd, info = load_encoder(tmp_path / "t.safetensors")
    assert info["grid_size"] == 4 and sorted(sd) == sorted(encoder)
    assert torch.equal(sd["blocks.0.attn.qkv.weight"], encoder["blocks.0.attn.qkv.weight"])


def test_user_mistakes(pretrain_ckpt, tmp_path, monkeypatch):
    src, _ = pretrain_ckpt
    for argv, message in (([str(src), "--to", "mmseg", "-o", str(src)], "would overwrite the source"),
                          ([str(src), "--to", "detectron2", "-o", "x.safetensors"], "give -o a .pth name"),
                          ([str(src), "--to", "timm", "--final-norm", "-o", "x.pth"], "--to mmseg only")):
        with pytest.raises(UserError, match=message):
            monkeypatch.setattr(sys, "argv", ["convert_ckpt.py", *argv, "--debug"])
            convert_ckpt.main(argv)


def test_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        convert_ckpt.main(["--help"])
    help_text = capsys.readouterr().out
    assert done.value.code == 0 and "Example:" in help_text and "--to detectron2" in help_text
    (tmp_path / "notes.pth").write_text("not weights")
    run = subprocess.run([sys.executable, TOOL, str(tmp_path / "notes.pth"), "--to", "mmseg", "-o",
                          str(tmp_path / "out.pth")], capture_output=True, text=True)
    assert run.returncode == 2 and not (tmp_path / "out.pth").exists()
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1 and "not a PyTorch checkpoint" in run.stderr
