"""The real COCO configs build on the CPU without COCO, with the paper's recipe and the shared layer-decay rule."""
import os

import pytest
import torch
from det_helpers import CONFIGS
from detectron2.config import instantiate
from detectron2.modeling import ViT
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

from asl.cli import UserError
from asl.models import ARCHS
from asl.optim import no_weight_decay
from transfer.detection.data import prepare_datasets
from transfer.detection.engine import build_model_and_optimizer, load_config


def cfg_of(name, *overrides):
    cfg = load_config(os.path.join(CONFIGS, name), overrides)
    cfg.train.device = "cpu"
    return cfg


def check_groups(model, optimizer, lr, decay, depth, weight_decay):
    """Every parameter once; blocks at lr * decay^(depth - i) (0.7 per block from the top), embeddings one step
    further down, pyramid and heads at lr; no weight decay exactly where asl.optim's rule says (and detectron2's
    own get_vit_lr_decay_rate agrees on every scale)."""
    seen = {}
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"]):
            assert name not in seen
            seen[name] = (group["lr"], group["weight_decay"], param)
    assert len(seen) == sum(1 for p in model.parameters() if p.requires_grad)
    for name, (group_lr, wd, param) in seen.items():
        assert group_lr == pytest.approx(lr * get_vit_lr_decay_rate(name, decay, depth), rel=1e-9), name
        assert wd == (0.0 if no_weight_decay(name, param) else weight_decay), name
    top = f"backbone.net.blocks.{depth - 1}.attn.qkv.weight"
    assert seen[top][0] == pytest.approx(lr * decay) and seen[top][1] == weight_decay
    assert seen["backbone.net.blocks.0.mlp.fc1.weight"][0] == pytest.approx(lr * decay ** depth)
    for name in ("backbone.net.pos_embed", "backbone.net.patch_embed.proj.bias", "backbone.net.blocks.0.norm1.weight",
                 "backbone.net.blocks.2.attn.rel_pos_h", "backbone.net.blocks.3.attn.qkv.bias"):
        assert seen[name][1] == 0.0, name
    assert seen["backbone.net.pos_embed"][0] == pytest.approx(lr * decay ** (depth + 1))
    assert seen["backbone.net.patch_embed.proj.weight"][1] == weight_decay
    assert seen["roi_heads.box_predictor.cls_score.weight"][:2] == (lr, weight_decay)
    assert seen["backbone.simfp_2.0.bias"][:2] == (lr, 0.0)
    return seen


def test_coco_vitb_builds_on_cpu_with_the_seed_recipe(tmp_path):
    cfg = cfg_of("coco_vitb.py")
    model, optimizer = build_model_and_optimizer(cfg)
    net = model.backbone.net
    assert isinstance(net, ViT) and len(net.blocks) == 12 and net.blocks[0].attn.num_heads == 12
    assert net.pos_embed.shape == (1, 14 * 14 + 1, 768)  # 224 px pretraining grid + cls slot, as converted
    assert [i for i, b in enumerate(net.blocks) if b.window_size == 0] == [2, 5, 8, 11]
    assert all(b.window_size == 14 for i, b in enumerate(net.blocks) if i not in (2, 5, 8, 11))
    assert net.blocks[11].attn.use_rel_pos and net.blocks[11].drop_path.drop_prob == pytest.approx(0.1)
    assert model.backbone._out_feature_strides == {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    assert model.backbone.simfp_2[1].__class__.__name__ == "LayerNorm" and model.input_format == "RGB"
    assert model.roi_heads.box_head.conv1.norm.__class__.__name__ == "LayerNorm"
    assert model.roi_heads.num_classes == 80
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.999)
    check_groups(model, optimizer, lr=8e-5, decay=0.7, depth=12, weight_decay=0.1)

    # 100 epochs of 118k images at batch 64; half-period cosine after a 0.25-epoch linear warmup
    assert cfg.train.max_iter == 184375 and cfg.dataloader.train.total_batch_size == 64
    assert cfg.train.amp.enabled and cfg.model.backbone.net.drop_path_rate == 0.1
    schedule = instantiate(cfg.lr_multiplier)
    warmup = 0.25 * 118000 / 64 / cfg.train.max_iter
    assert schedule(0.0) == pytest.approx(0.001)
    assert schedule(warmup) == pytest.approx(1.0, abs=1e-4)
    assert schedule(0.5) == pytest.approx(0.5, abs=1e-3) and schedule(0.999999) == pytest.approx(0.0, abs=1e-4)

    # the loader is lazy: nothing touches COCO until it is built, and building it without COCO is a clear error
    resize = cfg.dataloader.train.mapper.augmentations[1]
    assert (resize.min_scale, resize.max_scale, resize.target_height) == (0.1, 2.0, 1024)
    assert cfg.dataloader.train.dataset.names == "asl_coco_2017_train"
    with pytest.raises(UserError, match="instances_train2017.json does not exist"):
        prepare_datasets(cfg, str(tmp_path))


def test_coco_vitl_config_has_the_papers_recipe_on_vitl():
    cfg = cfg_of("detection/mask_rcnn_vitdet_l_100ep_coco.py")
    assert {"dataloader", "lr_multiplier", "model", "optimizer", "train"} <= set(cfg)  # a whole, trainable config
    net = cfg.model.backbone.net
    # the paper: drop path 0.1 for all models, lr 8e-5, wd 0.1, 100 epochs at batch 64
    assert (net.embed_dim, net.depth, net.num_heads, net.drop_path_rate) == (1024, 24, 16, 0.1)
    assert sorted(set(range(24)) - set(net.window_block_indexes)) == [5, 11, 17, 23]  # ViTDet's global blocks
    assert (cfg.optimizer.params.layer_decay, cfg.optimizer.params.num_layers) == (0.8, 24)  # ViTDet's ViT-L decay
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (8e-5, 0.1) and cfg.train.max_iter == 184375
    assert cfg.dataloader.train.total_batch_size == 64


def test_vitdet_values_config_differs_from_the_papers_vitl_only_in_vitdets_values():
    paper = cfg_of("detection/mask_rcnn_vitdet_l_100ep_coco.py")
    vitdet = cfg_of("detection/mask_rcnn_vitdet_l_100ep_coco_vitdet_values.py")
    assert (vitdet.model.backbone.net.drop_path_rate, vitdet.optimizer.lr) == (0.4, 1e-4)  # ViTDet's ViT-L
    assert (vitdet.optimizer.params.layer_decay, vitdet.optimizer.params.num_layers) == (0.8, 24)
    assert (paper.model.backbone.net.drop_path_rate, paper.optimizer.lr) == (0.1, 8e-5)  # separate objects
    assert repr(vitdet.model) != repr(paper.model)
    vitdet.model.backbone.net.drop_path_rate, vitdet.optimizer.lr = 0.1, 8e-5
    for name in ("model", "optimizer", "train", "lr_multiplier", "dataloader"):
        assert repr(vitdet[name]) == repr(paper[name]), name


@pytest.mark.slow
def test_coco_vitl_builds_on_cpu():
    cfg = cfg_of("detection/mask_rcnn_vitdet_l_100ep_coco.py")
    model, optimizer = build_model_and_optimizer(cfg)
    assert len(model.backbone.net.blocks) == 24
    check_groups(model, optimizer, lr=8e-5, decay=0.8, depth=24, weight_decay=0.1)


def test_toy_config_matches_the_toy_pretraining_encoder():
    cfg = cfg_of("detection/mask_rcnn_vitdet_toy_1000it.py")
    net, arch = cfg.model.backbone.net, ARCHS["vit_toy_patch8"]
    assert (net.embed_dim, net.depth, net.num_heads, net.patch_size) == (
        arch["embed_dim"], arch["depth"], arch["num_heads"], arch["patch_size"])
    assert net.img_size == net.pretrain_img_size == 64 and net.pretrain_use_cls_token
    assert cfg.optimizer.params.num_layers == arch["depth"]
    model, optimizer = build_model_and_optimizer(cfg)
    assert model.backbone.net.pos_embed.shape == (1, 8 * 8 + 1, arch["embed_dim"])
    check_groups(model, optimizer, lr=cfg.optimizer.lr, decay=0.7, depth=arch["depth"],
                 weight_decay=cfg.optimizer.weight_decay)


def test_unknown_override_key_is_an_error():
    with pytest.raises(UserError, match=r"unknown config key 'train.max_iters'.*max_iter"):
        cfg_of("detection/mask_rcnn_vitdet_toy_1000it.py", "train.max_iters=5")
    with pytest.raises(UserError, match="unknown config key 'model.backbone.net.embed_dims'"):
        cfg_of("detection/mask_rcnn_vitdet_toy_1000it.py", "model.backbone.net.embed_dims=5")
    # an argument the LazyCall accepts but the config does not set is fine
    cfg = cfg_of("detection/mask_rcnn_vitdet_toy_1000it.py", "model.backbone.net.use_act_checkpoint=False",
                 "train.max_iter=7")
    assert cfg.model.backbone.net.use_act_checkpoint is False and cfg.train.max_iter == 7
