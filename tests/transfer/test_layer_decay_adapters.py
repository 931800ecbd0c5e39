"""The one layer-decay rule through its three adapters (fine-tuning, detectron2, mmseg): the same weight of the
same ViT gets the same lr scale and weight decay in every framework, wrapped in DDP or not. Decay rate 2, so
every expected scale is an exact integer (mmseg's test style)."""
import pytest
import torch.distributed as dist
import torch.nn as nn
from detectron2.modeling import SimpleFeaturePyramid, ViT
from mmengine.optim import build_optim_wrapper
from mmseg.models.backbones import MAE
from torch.nn.parallel import DistributedDataParallel

from asl.convert import key_map
from asl.models import ViTEncoder
from asl.optim import lr_param_groups, strip_wrappers
from transfer.detection.optim import vit_param_groups
from transfer.segmentation.optim import ViTLayerDecayOptimWrapperConstructor

DEPTH, LR, WD = 3, 1.0, 0.1


def with_head(name, module):
    model = nn.Module()
    setattr(model, name, module)
    model.head = nn.Linear(64, 5)
    return model


def finetune_groups(model):
    return lr_param_groups(model, LR, WD, layer_decay=2.0)


def detectron2_groups(model):
    return vit_param_groups(model, LR, WD, layer_decay=2.0)


def mmseg_groups(model):
    cfg = dict(type="OptimWrapper", constructor=ViTLayerDecayOptimWrapperConstructor.__name__,
               optimizer=dict(type="AdamW", lr=LR, weight_decay=WD), paramwise_cfg=dict(layer_decay_rate=2.0))
    return build_optim_wrapper(model, cfg).optimizer.param_groups


ADAPTERS = {  # model builder, group builder, prefix of the backbone, canonical key -> framework key
    "finetune": (lambda: with_head("encoder", ViTEncoder(64, 16, embed_dim=64, depth=DEPTH, num_heads=2)),
                 finetune_groups, "encoder.", key_map("timm", DEPTH)),
    "detectron2": (lambda: with_head("backbone", SimpleFeaturePyramid(
        ViT(img_size=64, patch_size=16, embed_dim=64, depth=DEPTH, num_heads=2, use_rel_pos=True), "last_feat",
        out_channels=16, scale_factors=(1.0,))), detectron2_groups, "", key_map("detectron2", DEPTH)),
    "mmseg": (lambda: with_head("backbone", MAE(img_size=64, patch_size=16, embed_dims=64, num_layers=DEPTH,
                                                num_heads=2, init_values=1.0, final_norm=True)),
              mmseg_groups, "backbone.", key_map("mmseg", DEPTH, final_norm=True)),
}


def canonical_groups(adapter, wrap=None):
    """canonical encoder key (or 'head.weight'/'head.bias') -> (lr, weight decay) under one adapter."""
    build, groups_of, prefix, kmap = ADAPTERS[adapter]
    model = build()
    names = {prefix + v: k for k, v in kmap.items() if v}
    names.update({"head.weight": "head.weight", "head.bias": "head.bias"})
    groups = groups_of(wrap(model) if wrap else model)
    out = {}
    for group in groups:
        for name in group["param_names"]:
            name = strip_wrappers(name)
            if name in names:
                out[names[name]] = (group["lr"], group["weight_decay"])
    return out


def expected(key):
    if key.startswith("head."):
        return (1.0, WD if key.endswith("weight") else 0.0)
    layer = int(key.split(".")[1]) + 1 if key.startswith("blocks.") else DEPTH + 1 if key.startswith("norm.") else 0
    decays = key.endswith("weight") and not key.startswith("norm") and ".norm" not in key
    return (2.0 ** (DEPTH + 1 - layer), WD if decays else 0.0)


@pytest.fixture(scope="module")
def process_group(tmp_path_factory):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path_factory.mktemp('pg')}/store", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def test_same_groups_through_all_three_adapters_wrapped_in_ddp_or_not(process_group):
    results = {}
    for adapter in ADAPTERS:
        plain = canonical_groups(adapter)
        assert canonical_groups(adapter, wrap=DistributedDataParallel) == plain, adapter
        assert all(value == expected(key) for key, value in plain.items()), adapter
        results[adapter] = plain
    # ViTDet has no cls token and no final norm, our encoder's fixed pos_embed is frozen; all else is shared
    shared = set.intersection(*(set(r) for r in results.values()))
    assert len(shared) == 2 + 12 * DEPTH + 2
    assert results["finetune"].keys() - shared == {"cls_token", "norm.weight", "norm.bias"}
    assert results["finetune"]["norm.weight"] == results["mmseg"]["norm.weight"] == (1.0, 0.0)
    assert results["detectron2"]["pos_embed"] == results["mmseg"]["pos_embed"] == (16.0, 0.0)
    for key in shared:
        assert results["finetune"][key] == results["detectron2"][key] == results["mmseg"][key], key
