"""The UperNet configs: the ViT-B recipe builds on a CPU with the layer-decay groups of the shared rule, ViT-L
and the toy config resolve, and the toy model runs forward."""
import os

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from transfer.segmentation.engine import configure_amp, load_config

from .conftest import REPO

VITB = os.path.join(REPO, "configs", "ade20k_vitb_upernet.py")
VITL = os.path.join(REPO, "configs", "segmentation", "upernet_vitl_8xb2_100ep_ade20k.py")
TOY = os.path.join(REPO, "configs", "segmentation", "upernet_toy_1xb8_toyscenes.py")


def test_vitb_recipe_values():
    cfg = load_config(VITB)
    bb = cfg.model.backbone
    assert (bb.type, bb.embed_dims, bb.num_layers, bb.num_heads, bb.patch_size) == ("StrictMAE", 768, 12, 12, 16)
    assert tuple(bb.img_size) == (512, 512) and bb.drop_path_rate == 0.1 and list(bb.out_indices) == [3, 5, 7, 11]
    assert cfg.model.neck.type == "Feature2Pyramid" and list(cfg.model.neck.rescales) == [4, 2, 1, 0.5]
    assert cfg.model.decode_head.type == "UPerHead" and cfg.model.decode_head.num_classes == 150
    assert cfg.model.auxiliary_head.type == "FCNHead" and cfg.model.auxiliary_head.num_classes == 150
    assert cfg.model.test_cfg.mode == "slide" and tuple(cfg.model.test_cfg.crop_size) == (512, 512)
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.train_dataloader.dataset.type == "ADE20KDataset"
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == "RandomCrop"][0]
    assert tuple(crop.crop_size) == (512, 512)
    assert cfg.train_cfg.max_iters == 126313 == -(-20210 * 100 // 16)  # 100 epochs
    assert [s.type for s in cfg.param_scheduler] == ["LinearLR", "PolyLR"]
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters
    ow = cfg.optim_wrapper
    assert ow.type == "AmpOptimWrapper" and ow.constructor == "ViTLayerDecayOptimWrapperConstructor"
    assert ow.optimizer.type == "AdamW" and ow.paramwise_cfg.layer_decay_rate == 0.65
    assert bb.norm_cfg.eps == 1e-6  # = asl.models.vit.LayerNorm, so converted weights compute the encoder
    assert cfg.val_evaluator.type == "PerClassIoUMetric"
    assert cfg.train_dataloader.dataset.data_root.endswith("ADEChallengeData2016")


def test_vitb_builds_on_cpu_with_layer_decay_065_groups(monkeypatch, capsys):
    monkeypatch.setattr("transfer.segmentation.engine._has_accelerator", lambda: False)
    cfg = load_config(VITB)
    assert cfg.optim_wrapper.type == "AmpOptimWrapper"
    configure_amp(cfg, requested=False)  # no GPU here: AmpOptimWrapper -> OptimWrapper, and the log says so
    assert cfg.optim_wrapper.type == "OptimWrapper" and "loss_scale" not in cfg.optim_wrapper
    assert "no GPU, so the config's AmpOptimWrapper runs as a plain fp32 OptimWrapper" in capsys.readouterr().out
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    assert 150e6 < sum(p.numel() for p in model.parameters()) < 170e6
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    lr = {n: g["lr"] for g in groups for n in g["param_names"]}
    wd = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    base = 1e-4
    for name in ("backbone.patch_embed.projection.weight", "backbone.pos_embed", "backbone.cls_token"):
        assert lr[name] == pytest.approx(base * 0.65 ** 13)
    for i in range(12):
        assert lr[f"backbone.layers.{i}.attn.qkv.weight"] == pytest.approx(base * 0.65 ** (12 - i))
        assert lr[f"backbone.layers.{i}.ln1.bias"] == pytest.approx(base * 0.65 ** (12 - i))
    for name in ("decode_head.conv_seg.weight", "neck.upsample_4x.0.weight", "auxiliary_head.conv_seg.weight"):
        assert lr[name] == pytest.approx(base)
    assert wd["backbone.layers.3.ffn.layers.0.0.weight"] == 0.05
    assert wd["backbone.pos_embed"] == wd["backbone.layers.3.ln1.weight"] == wd["backbone.layers.0.gamma_1"] == 0.0
    assert len(lr) == sum(1 for p in model.parameters() if p.requires_grad)


def test_vitl_resolves_to_the_large_encoder():
    cfg = load_config(VITL)
    bb = cfg.model.backbone
    assert (bb.embed_dims, bb.num_layers, bb.num_heads, list(bb.out_indices)) == (1024, 24, 16, [7, 11, 15, 23])
    assert cfg.model.neck.embed_dim == 1024 and list(cfg.model.decode_head.in_channels) == [1024] * 4
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65 and cfg.train_cfg.max_iters == 126313


def test_toy_model_runs_forward_and_has_the_toy_encoder():
    cfg = load_config(TOY)
    bb = cfg.model.backbone
    assert (bb.embed_dims, bb.num_layers, bb.num_heads, bb.patch_size) == (128, 4, 4, 8)  # vit_toy_patch8
    assert cfg.model.decode_head.num_classes == 5 and cfg.train_dataloader.dataset.type == "ToyScenesDataset"
    assert cfg.model.test_cfg.mode == "slide"
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64), mode="tensor")
    assert logits.shape == (1, 5, 32, 32)  # stride 2: the pyramid's finest level
