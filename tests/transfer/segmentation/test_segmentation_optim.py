"""mmengine/mmseg adapter of the layer-decay rule: the registered optimizer-wrapper constructor."""
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import transfer.segmentation.optim  # noqa: F401  (registers the constructor)
from asl.models import ViTEncoder

CFG = dict(type="OptimWrapper", constructor="ViTLayerDecayOptimWrapperConstructor",
           optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.1), paramwise_cfg=dict(layer_decay_rate=2.0))


def groups_of(optim_wrapper):
    return {n: (g["lr"], g["weight_decay"]) for g in optim_wrapper.optimizer.param_groups for n in g["param_names"]}


def segmentor(backbone):
    model = nn.Module()
    model.backbone, model.decode_head = backbone, nn.Conv2d(64, 5, 1)
    return model


def test_any_vit_backbone_class_gets_exact_layer_decayed_groups():
    # a backbone mmseg's own constructor would refuse (it dispatches on "BEiT"/"MAE" in the class name)
    got = groups_of(build_optim_wrapper(segmentor(ViTEncoder(32, 16, embed_dim=64, depth=3, num_heads=2)), CFG))
    assert got["backbone.cls_token"] == (16.0, 0.0)
    assert got["backbone.blocks.0.attn.qkv.weight"] == (8.0, 0.1)
    assert got["backbone.blocks.2.norm2.bias"] == (2.0, 0.0)
    assert got["backbone.norm.weight"] == (1.0, 0.0) and got["decode_head.weight"] == (1.0, 0.1)


def test_same_lr_as_mmseg_for_its_mae_but_no_decay_on_positions():
    from mmseg.engine.optimizers import LearningRateDecayOptimizerConstructor
    from mmseg.models.backbones import MAE

    model = segmentor(MAE(img_size=32, patch_size=16, embed_dims=64, num_layers=3, num_heads=2, init_values=1.0))
    ours = groups_of(build_optim_wrapper(model, CFG))
    mmseg = groups_of(LearningRateDecayOptimizerConstructor(
        dict(type="OptimWrapper", optimizer=CFG["optimizer"]), dict(num_layers=3, decay_rate=2.0))(model))
    assert ours["backbone.pos_embed"] == (16.0, 0.0) and mmseg["backbone.pos_embed"] == (16.0, 0.1)
    assert ours["backbone.layers.0.attn.relative_position_bias_table"] == (8.0, 0.0)
    assert ours["backbone.layers.2.gamma_1"] == (2.0, 0.0)
    differ = {n for n in ours if ours[n] != mmseg[n]}
    assert differ == {"backbone.pos_embed", "backbone.cls_token", "backbone.layers.0.attn.relative_position_bias_table",
                      "backbone.layers.1.attn.relative_position_bias_table",
                      "backbone.layers.2.attn.relative_position_bias_table"}
