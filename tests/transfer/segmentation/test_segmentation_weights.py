"""Converted weights in mmseg's MAE backbone: the same patch features as the source encoder (layer scale 1.0,
zero relative-position bias), every backbone key loaded or initialised by mmseg, and the way back."""
import pytest
import torch
from mmseg.models.backbones import MAE

from asl.checkpoint import load_encoder, load_into, save_atomic
from asl.convert import convert, unmatched_target_keys
from asl.models import ViTEncoder

TINY = dict(img_size=64, patch_size=16, embed_dim=64, depth=3, num_heads=2)


def random_encoder():
    """A ViTEncoder whose every tensor (biases, norms, positions included) is random, so no key can hide."""
    torch.manual_seed(0)
    enc = ViTEncoder(**TINY).eval()
    with torch.no_grad():
        for name, p in enc.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name and name.endswith("weight")
                    else 0.2 * torch.randn_like(p))
    return enc


def mae(path=None, img_size=64, final_norm=True):
    init_cfg = dict(type="Pretrained", checkpoint=str(path)) if path else None
    model = MAE(img_size=img_size, patch_size=16, embed_dims=64, num_layers=3, num_heads=2, init_values=1.0,
                norm_cfg=dict(type="LN", eps=1e-6), final_norm=final_norm, init_cfg=init_cfg)
    model.init_weights()  # mmseg's own loading path: init_cfg Pretrained
    model.eval()  # (BEiT.train returns None)
    return model


def mmseg_file(tmp_path, enc, **kw):
    save_atomic({"model": enc.state_dict()}, tmp_path / "enc.pth")
    sd, info = load_encoder(tmp_path / "enc.pth")
    out, _ = convert(sd, info, "mmseg", **kw)
    save_atomic({"state_dict": out}, tmp_path / "mmseg.pth")
    return tmp_path / "mmseg.pth", out


@pytest.mark.parametrize("final_norm", [True, False])
def test_mae_backbone_gives_the_encoders_patch_features(tmp_path, final_norm):
    enc = random_encoder()
    path, _ = mmseg_file(tmp_path, enc, final_norm=final_norm)
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        theirs = mae(path, final_norm=final_norm)(img)[-1].flatten(2).transpose(1, 2)
        ours = enc.forward_features(img, norm=final_norm)[:, 1:]
    assert torch.allclose(theirs, ours, atol=1e-4)


def test_every_backbone_key_is_accounted_for_and_positions_resize_like_mmseg(tmp_path):
    path, out = mmseg_file(tmp_path, random_encoder(), final_norm=True)  # also writes enc.pth
    missing, unexpected = mae(final_norm=True).load_state_dict(out, strict=False)
    assert unexpected == [] and unmatched_target_keys("mmseg", missing) == []
    resized, _ = convert(*load_encoder(tmp_path / "enc.pth"), "mmseg", img_size=96)
    assert torch.allclose(resized["pos_embed"], mae(path, img_size=96).pos_embed, atol=1e-6)


def test_an_mmseg_backbone_converts_back_exactly(tmp_path):
    torch.manual_seed(1)
    theirs = mae(final_norm=True)
    with torch.no_grad():
        theirs.pos_embed.normal_(0, 0.2)
        for layer in theirs.layers:
            layer.gamma_1.uniform_(0.5, 1.5)  # trained layer scale, folded into the linear layers on the way back
            layer.gamma_2.uniform_(0.5, 1.5)
    save_atomic({"state_dict": {"backbone." + k: v for k, v in theirs.state_dict().items()}}, tmp_path / "seg.pth")
    sd, info = load_encoder(tmp_path / "seg.pth")
    assert info["format"] == "mmseg" and info["final_norm"]
    ours = ViTEncoder(**TINY).eval()
    load_into(ours, sd)
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(theirs(img)[-1].flatten(2).transpose(1, 2), ours.forward_features(img)[:, 1:],
                              atol=1e-4)
