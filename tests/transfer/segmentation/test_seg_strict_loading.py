"""Encoder weights into mmseg's MAE backbone (StrictMAE): every tensor loaded, or a one-line error. mmseg's own
Pretrained loading is shown to be silent about a wrong prefix, which is why StrictMAE exists."""
import pytest
import torch
from mmseg.models.backbones import MAE

from asl.checkpoint import save_atomic
from asl.cli import UserError
from transfer.segmentation.models import StrictMAE

from .conftest import convert_to_mmseg, make_pretrain_checkpoint

MMSEG_TINY = dict(img_size=64, patch_size=8, embed_dims=32, num_layers=4, num_heads=2, init_values=1.0,
                  out_indices=[0, 1, 2, 3], norm_cfg=dict(type="LN", eps=1e-6))


def backbone(checkpoint, cls=StrictMAE, **kw):
    model = cls(**dict(MMSEG_TINY, **kw), init_cfg=dict(type="Pretrained", checkpoint=str(checkpoint)))
    model.init_weights()
    model.eval()  # mmseg's BEiT.train() returns None
    return model


def test_every_weight_arrives_and_features_match_the_encoder(tiny_ckpts):
    path, encoder = tiny_ckpts[1], tiny_ckpts[2].eval()
    model = backbone(path)
    assert model.loaded_weights["method"] == "asl"  # recorded by tools/convert_ckpt.py
    assert model.loaded_weights["loaded"] == 2 + 2 + 12 * 4  # pos, cls, patch w/b, 12 per block, no final norm
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        theirs = model(img)[-1].flatten(2).transpose(1, 2)
        ours = encoder.forward_features(img, norm=False)[:, 1:]
    assert torch.allclose(theirs, ours, atol=1e-4)


def test_positions_are_resized_for_another_input_size(tiny_ckpts):
    model = backbone(tiny_ckpts[1], img_size=96)
    assert model.pos_embed.shape == (1, 1 + 12 * 12, 32)
    assert any("resized" in note for note in model.loaded_weights["notes"])


def test_no_checkpoint_means_random_init():
    model = StrictMAE(**MMSEG_TINY, init_cfg=dict(type="Pretrained", checkpoint=None))
    model.init_weights()
    assert not hasattr(model, "loaded_weights")


def test_mmseg_own_loading_silently_loads_nothing_on_a_wrong_prefix_ours_fails(tiny_ckpts, tmp_path):
    sd = torch.load(tiny_ckpts[1], weights_only=True)["state_dict"]
    prefixed = tmp_path / "prefixed.pth"
    save_atomic({"state_dict": {"model.encoder." + k: v for k, v in sd.items()}}, prefixed)
    theirs = backbone(prefixed, cls=MAE)  # no error, no weight loaded
    assert not torch.equal(theirs.layers[0].attn.qkv.weight, sd["layers.0.attn.qkv.weight"])
    with pytest.raises(UserError):
        backbone(prefixed)


def test_a_checkpoint_not_converted_is_refused_with_the_command(tiny_ckpts):
    with pytest.raises(UserError, match=r"asl-pretrain checkpoint; segmentation reads mmseg files: convert it once "
                                        r"with python tools/convert_ckpt.py .* --to mmseg"):
        backbone(tiny_ckpts[0])


def test_wrong_architecture_is_a_one_line_error(tmp_path):
    make_pretrain_checkpoint(tmp_path / "wide.pth", embed_dim=48, num_heads=3)
    convert_to_mmseg(tmp_path / "wide.pth", tmp_path / "wide_mmseg.pth")
    with pytest.raises(UserError, match="width 48, depth 4, patch 8, but the config's backbone has width 32"):
        backbone(tmp_path / "wide_mmseg.pth")
    make_pretrain_checkpoint(tmp_path / "deep.pth", depth=5)
    convert_to_mmseg(tmp_path / "deep.pth", tmp_path / "deep_mmseg.pth")
    with pytest.raises(UserError, match="depth 5"):
        backbone(tmp_path / "deep_mmseg.pth")


def test_missing_unreadable_or_incomplete_weights_are_errors(tiny_ckpts, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        backbone(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="not a PyTorch checkpoint"):
        backbone(tmp_path / "junk.pth")
    sd = torch.load(tiny_ckpts[1], weights_only=True)["state_dict"]
    del sd["layers.2.ffn.layers.1.weight"]
    save_atomic({"state_dict": sd}, tmp_path / "incomplete.pth")
    with pytest.raises(UserError, match="lacks layers.2.ffn.layers.1.weight, which the model needs"):
        backbone(tmp_path / "incomplete.pth")


def test_final_norm_asked_but_absent(tiny_ckpts):
    with pytest.raises(UserError, match="final_norm=False"):
        backbone(tiny_ckpts[1], final_norm=True)
