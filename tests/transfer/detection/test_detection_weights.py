"""Converted weights in detectron2: the same patch features as the source encoder, and every key of a ViTDet
Mask R-CNN either loaded or initialised by detectron2 itself."""
import torch
import torch.nn as nn
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import SimpleFeaturePyramid, ViT

from asl.checkpoint import load_encoder, save_atomic
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


def d2_file(tmp_path, enc):
    save_atomic({"model": enc.state_dict()}, tmp_path / "enc.pth")
    sd, info = load_encoder(tmp_path / "enc.pth")
    out, report = convert(sd, info, "detectron2")
    save_atomic({"model": out}, tmp_path / "d2.pth")
    return tmp_path / "d2.pth", out, report


def test_vitdet_backbone_gives_the_encoders_patch_features(tmp_path):
    enc = random_encoder()
    path, _, report = d2_file(tmp_path, enc)
    vit = ViT(img_size=64, patch_size=16, embed_dim=64, depth=3, num_heads=2, norm_layer=nn.LayerNorm,
              use_rel_pos=False, window_size=0, pretrain_img_size=64, pretrain_use_cls_token=True)
    model = nn.Module()
    model.backbone = SimpleFeaturePyramid(vit, "last_feat", out_channels=16, scale_factors=(1.0,), norm="LN")
    DetectionCheckpointer(model).load(str(path))
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        theirs = model.backbone.net(img)["last_feat"].flatten(2).transpose(1, 2)
        # ViTDet drops the cls token and has no final norm: the same encoder run on the patch tokens alone
        x = enc.patch_embed(img) + enc.pos_embed[:, 1:]
        for blk in enc.blocks:
            x = blk(x)
        with_cls = enc.forward_features(img, norm=False)[:, 1:]
    assert torch.allclose(theirs, x, atol=1e-4)
    assert not torch.allclose(theirs, with_cls, atol=1e-2)  # the cls token's influence: an architecture difference
    assert {"cls_token", "norm.weight", "norm.bias"} <= set(report.dropped)


def test_every_key_of_a_vitdet_mask_rcnn_is_accounted_for(tmp_path):
    from detectron2 import model_zoo
    from detectron2.config import instantiate

    path, out, _ = d2_file(tmp_path, random_encoder())
    cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
    cfg.backbone.net.update(img_size=64, embed_dim=64, depth=3, num_heads=2, window_size=2,
                            window_block_indexes=[0, 1], pretrain_img_size=64)
    cfg.backbone.update(out_channels=32, square_pad=64)
    model = instantiate(cfg)
    missing, unexpected = model.load_state_dict(out, strict=False)
    assert unexpected == [] and unmatched_target_keys("detectron2", missing) == []
    assert any(k.endswith("rel_pos_h") for k in missing)
    DetectionCheckpointer(model).load(str(path))
    assert torch.equal(model.backbone.net.blocks[2].mlp.fc2.weight, out["backbone.net.blocks.2.mlp.fc2.weight"])
