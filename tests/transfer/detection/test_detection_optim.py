"""detectron2 adapter of the layer-decay rule: groups of a ViTDet model, built the LazyConfig way."""
import torch
import torch.nn as nn
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.modeling import SimpleFeaturePyramid, ViT

from transfer.detection.optim import vit_param_groups


def vitdet():
    model = nn.Module()
    net = ViT(img_size=64, patch_size=16, embed_dim=64, depth=3, num_heads=2, window_size=2,
              window_block_indexes=[0], use_rel_pos=True)
    model.backbone = SimpleFeaturePyramid(net, "last_feat", out_channels=16, scale_factors=(2.0, 1.0), norm="LN")
    model.roi_heads = nn.Linear(16, 4)
    return model


def test_lazyconfig_optimizer_has_exact_layer_decayed_groups():
    model = vitdet()
    cfg = L(torch.optim.AdamW)(params=L(vit_param_groups)(lr="${..lr}", weight_decay="${..weight_decay}",
                                                          layer_decay=2.0), lr=1.0, weight_decay=0.1)
    cfg.params.model = model
    optimizer = instantiate(cfg)
    got = {n: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for n in g["param_names"]}
    assert got["backbone.net.pos_embed"] == (16.0, 0.0)
    assert got["backbone.net.patch_embed.proj.weight"] == (16.0, 0.1)
    assert got["backbone.net.blocks.0.attn.rel_pos_h"] == (8.0, 0.0)
    assert got["backbone.net.blocks.2.attn.qkv.weight"] == (2.0, 0.1)
    assert got["backbone.net.blocks.2.attn.qkv.bias"] == (2.0, 0.0)
    assert got["backbone.simfp_3.0.weight"] == (1.0, 0.1) and got["backbone.simfp_3.1.norm.weight"] == (1.0, 0.0)
    assert got["roi_heads.weight"] == (1.0, 0.1) and len(got) == len(list(model.parameters()))
