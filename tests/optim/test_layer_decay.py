"""The one layer-decay rule, in mmseg's test style: decay rate 2 makes every expected lr scale an exact integer."""
import torch
import torch.nn as nn

from asl.models import ViTEncoder
from asl.optim import count_layers, layer_id, lr_param_groups, param_groups


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = ViTEncoder(img_size=32, patch_size=16, embed_dim=64, depth=3, num_heads=2)
        self.head = nn.Linear(64, 10)


def by_name(groups):
    return {n: (g["lr_scale"], g["weight_decay"], g["layer_id"]) for g in groups for n in g["param_names"]}


def test_layer_ids_and_exact_scales():
    model = Classifier()
    assert count_layers(model) == 3
    got = by_name(param_groups(model, weight_decay=0.05, layer_decay=2.0))
    # embeddings 0 -> 2^4, block i -> 2^(3 - i), final norm and head -> 1; pos_embed is frozen, so absent
    assert got["encoder.cls_token"] == (16.0, 0.0, 0)
    assert got["encoder.patch_embed.proj.weight"] == (16.0, 0.05, 0)
    assert got["encoder.patch_embed.proj.bias"] == (16.0, 0.0, 0)
    assert got["encoder.blocks.0.attn.qkv.weight"] == (8.0, 0.05, 1)
    assert got["encoder.blocks.1.norm1.weight"] == (4.0, 0.0, 2)
    assert got["encoder.blocks.2.mlp.fc2.bias"] == (2.0, 0.0, 3)
    assert got["encoder.norm.weight"] == (1.0, 0.0, 4)
    assert got["head.weight"] == (1.0, 0.05, 4)
    assert "encoder.pos_embed" not in got


def test_prefix_and_wrapper_names():
    assert layer_id("backbone.net.blocks.4.attn.rel_pos_h", 12, "backbone.net.") == 5
    assert layer_id("module.backbone.layers.0.ln1.weight", 12, "backbone.") == 1
    assert layer_id("module._orig_mod.backbone.pos_embed", 12, "backbone.") == 0
    assert layer_id("decode_head.layers.0.weight", 12, "backbone.") == 13  # outside the backbone: the last id
    assert layer_id("decoder.decoder_blocks.0.norm1.weight", 12) == 13  # pretraining decoder: not the encoder's


def test_wrapped_model_gives_the_same_groups():
    model = Classifier()
    wrapper = nn.Module()
    wrapper.module = model  # the names DDP produces
    plain, wrapped = by_name(param_groups(model, 0.05, 2.0)), by_name(param_groups(wrapper, 0.05, 2.0))
    assert {"module." + k: v for k, v in plain.items()} == wrapped


def test_lr_param_groups_preset_each_groups_lr():
    groups = lr_param_groups(Classifier(), lr=1e-3, weight_decay=0.05, layer_decay=2.0)
    assert all(g["lr"] == 1e-3 * g["lr_scale"] for g in groups)
    optimizer = torch.optim.AdamW(groups, lr=123.0)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [1e-3, 2e-3, 4e-3, 8e-3, 16e-3]
