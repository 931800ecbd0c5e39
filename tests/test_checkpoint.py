"""asl.checkpoint: atomic saving, safe reading of every supported layout, architecture inference, bad input."""
import argparse
import os
import pickle
import random

import pytest
import torch
from safetensors.torch import save_file

from asl.checkpoint import encoder_state_dict, infer_arch, load_encoder, load_into, read_checkpoint, save_atomic
from asl.cli import UserError
from asl.models import PretrainModel, ViTEncoder
from asl.models.pos_embed import resize_pos_embed

TINY = dict(img_size=64, patch_size=16, embed_dim=64, depth=3, num_heads=2)


def encoder(**kw):
    torch.manual_seed(0)
    return ViTEncoder(**dict(TINY, **kw))


def assert_canonical(sd, enc):
    ref = enc.state_dict()
    assert sorted(sd) == sorted(ref)
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


def user_error(path_or_fn):
    """The one-line UserError that loading raises."""
    with pytest.raises(UserError) as err:
        path_or_fn() if callable(path_or_fn) else load_encoder(path_or_fn)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_save_atomic_writes_whole_files_only(tmp_path):
    path = tmp_path / "sub" / "ckpt.pth"
    save_atomic({"a": torch.arange(3)}, path)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # torch: AttributeError for a local lambda
        save_atomic({"a": lambda: 0}, path)  # unpicklable: the old file must survive untouched
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))
    assert os.listdir(path.parent) == ["ckpt.pth"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    save_atomic({"w": torch.ones(2, 2)}, tmp_path / "w.safetensors")
    assert torch.equal(read_checkpoint(tmp_path / "w.safetensors")["w"], torch.ones(2, 2))


def test_pretraining_checkpoint_of_this_project(tmp_path):
    model = PretrainModel(dict(TINY), dict(embed_dim=32, depth=1, num_heads=2), "asl")
    optimizer = torch.optim.AdamW(model.parameters())
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": {}, "epoch": 1,
                 "iteration": 7, "rng": [rng], "config": {"model": {"arch": "custom", "img_size": 64}}},
                tmp_path / "last.pth")
    sd, info = load_encoder(tmp_path / "last.pth")
    assert_canonical(sd, model.encoder)
    assert info["format"] == "asl-pretrain"
    assert (info["embed_dim"], info["depth"], info["patch_size"], info["grid_size"]) == (64, 3, 16, 4)
    assert info["cls_token"] and info["pos_embed_cls_slot"] and info["final_norm"]
    reasons = set(info["dropped"].values())
    assert len(reasons) == 2 and all(k.startswith(("decoder.", "enhance.")) for k in info["dropped"])


@pytest.mark.parametrize("layout", ["mae_encoder", "mae_with_decoder", "mae_training_args", "ddp", "compiled",
                                    "safetensors", "timm"])
def test_supported_layouts(tmp_path, layout):
    enc = encoder()
    sd = enc.state_dict()
    path = tmp_path / "ckpt.pth"
    if layout == "mae_encoder":
        save_atomic({"model": sd}, path)
    elif layout == "mae_with_decoder":
        save_atomic({"model": dict(sd, mask_token=torch.zeros(1, 1, 32), **{
            "decoder_embed.weight": torch.zeros(32, 64), "decoder_blocks.0.norm1.weight": torch.ones(32),
            "decoder_pred.weight": torch.zeros(768, 32)})}, path)
    elif layout == "mae_training_args":
        save_atomic({"model": sd, "epoch": 3, "args": argparse.Namespace(lr=1e-3, model="mae_vit_base")}, path)
    elif layout == "ddp":
        save_atomic({"model": {"module." + k: v for k, v in sd.items()}}, path)
    elif layout == "compiled":
        save_atomic({"module._orig_mod." + k: v for k, v in sd.items()}, path)
    elif layout == "safetensors":
        path = tmp_path / "ckpt.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    else:
        save_atomic(dict(sd, **{"head.weight": torch.zeros(10, 64), "head.bias": torch.zeros(10)}), path)
    out, info = load_encoder(path)
    assert_canonical(out, enc)
    assert info["format"] == "mae/timm"
    assert info["num_heads"] == 1 and info["num_heads_source"] == "assumed head width 64"


def test_num_heads_from_config_or_standard_width():
    sd = ViTEncoder(img_size=32, patch_size=16, embed_dim=384, depth=1, num_heads=6).state_dict()
    info = infer_arch(sd, {"model": {"arch": "vit_small_patch16"}})
    assert (info["num_heads"], info["num_heads_source"]) == (6, "config arch vit_small_patch16")
    assert (infer_arch(sd)["num_heads"], infer_arch(sd)["num_heads_source"]) == (6, "standard ViT of this width")


def test_load_into_resizes_pos_embed_and_names_mismatches():
    sd = encoder().state_dict()
    bigger = encoder(img_size=96)
    load_into(bigger, sd)
    assert torch.equal(bigger.pos_embed, resize_pos_embed(sd["pos_embed"], 6))
    message = user_error(lambda: load_into(encoder(embed_dim=96), sd))
    assert message == "the checkpoint: cls_token has shape (1, 1, 64) but the model needs (1, 1, 96)"
    del sd["norm.bias"]
    assert "norm.bias" in user_error(lambda: load_into(encoder(), sd))


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bad_files_are_one_line_errors(tmp_path):
    save_atomic({"model": encoder().state_dict()}, tmp_path / "good.pth")
    whole = (tmp_path / "good.pth").read_bytes()
    assert "truncated or corrupt" in user_error(write(tmp_path, "half.pth", whole[: len(whole) // 2]))
    assert "not a PyTorch checkpoint" in user_error(write(tmp_path, "notes.pth", b"epoch 1: loss 0.5\n"))
    assert "is empty" in user_error(write(tmp_path, "empty.pth", b""))
    assert "does not exist" in user_error(tmp_path / "missing.pth")
    assert "safetensors" in user_error(write(tmp_path, "w.safetensors", b"\x10\0\0\0\0\0\0\0{\"a\": 1"))
    save_atomic({"model": "not weights"}, tmp_path / "str.pth")
    assert "holds no state dict" in user_error(tmp_path / "str.pth")


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": encoder().state_dict(), "extra": RunsCode(marker)}, tmp_path / "evil.pth")
    message = user_error(tmp_path / "evil.pth")
    assert message.startswith("refusing to load") and "system" in message and "arbitrary code" in message
    assert not marker.exists()


def test_resnet_is_not_a_vit(tmp_path):
    import torchvision

    save_atomic(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    assert user_error(tmp_path / "r18.pth").startswith("not a ViT checkpoint: there is no patch embedding")


def test_inconsistent_or_incomplete_vits():
    sd = encoder().state_dict()
    other = encoder(embed_dim=96).state_dict()
    mixed = dict(sd, **{k: v for k, v in other.items() if k.startswith("blocks.1.")})
    assert user_error(lambda: encoder_state_dict(mixed)) == (
        "blocks.1.norm1.weight has shape (96,) but a ViT of width 64 needs (64,)")
    no_block = {k: v for k, v in sd.items() if not k.startswith("blocks.1.")}
    assert user_error(lambda: encoder_state_dict(no_block)) == "the checkpoint lacks block(s) 1 (it has blocks 0, 2)"
    del sd["blocks.2.mlp.fc2.weight"]
    assert user_error(lambda: encoder_state_dict(sd)) == (
        "blocks.2.mlp.fc2.weight is missing (the checkpoint has 3 blocks)")


def test_a_vit_of_another_kind_is_refused():
    sd = dict(encoder().state_dict(), **{"blocks.0.ls1.gamma": torch.ones(64)})  # timm layer scale
    assert user_error(lambda: encoder_state_dict(sd)) == (
        "blocks.0.ls1.gamma is not part of a plain (MAE-style) ViT encoder")
