# Shared pieces of the UperNet segmentation configs (mmengine config, `_base_` inheritance from mmseg's own
# MAE + UperNet, ADE20K and runtime configs, shipped inside the mmsegmentation package as `mmseg::...`).
# What this file changes on top of mmseg's:
#   * backbone `StrictMAE` (mmseg's MAE whose Pretrained loading fails loudly on keys that do not fit),
#     layer scale starting at 1.0 (init_values=1.0) so converted plain-ViT weights compute exactly the encoder;
#   * the optimizer-wrapper constructor applying the project's one layer-decay rule (asl.optim);
#   * dataset roots under $ASL_DATASETS (default ./datasets);
#   * `log.jsonl` + tensorboard in the run directory, mIoU / mAcc / aAcc from mmseg's IoUMetric.
_base_ = [
    "mmseg::_base_/models/upernet_mae.py",
    "mmseg::_base_/datasets/ade20k.py",
    "mmseg::_base_/default_runtime.py",
]
custom_imports = dict(
    imports=["transfer.segmentation.models", "transfer.segmentation.data", "transfer.segmentation.hooks",
             "transfer.segmentation.metrics", "transfer.segmentation.optim"],
    allow_failed_imports=False)

# Encoder weights: init_cfg=dict(type="Pretrained", checkpoint=PATH) with a file from
# `tools/convert_ckpt.py --to mmseg` (the only files it reads); tools/train_seg.py --init PATH
# sets it. checkpoint=None: random initialisation.
model = dict(
    backbone=dict(
        type="StrictMAE",
        init_values=1.0,
        final_norm=False,
        # LayerNorm eps 1e-6 (mmseg's MAE config, inherited) = this project's ViTEncoder and MAE's release
        init_cfg=dict(type="Pretrained", checkpoint=None)))

data_root = "{{$ASL_DATASETS:datasets}}/ADEChallengeData2016"
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
# mmseg's IoUMetric (aAcc, mIoU, mAcc in percent) that also returns the per-class IoU (transfer/segmentation/metrics.py)
val_evaluator = dict(type="PerClassIoUMetric", iou_metrics=["mIoU"])
test_evaluator = val_evaluator

optim_wrapper = dict(
    type="OptimWrapper",
    constructor="ViTLayerDecayOptimWrapperConstructor",  # transfer/segmentation/optim.py -> asl.optim
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),  # AdamW [paper]; values [mmseg]
    paramwise_cfg=dict(layer_decay_rate=0.65))  # [paper]

custom_hooks = [dict(type="JsonLinesHook")]
vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
visualizer = dict(type="SegLocalVisualizer", vis_backends=vis_backends, name="visualizer")
randomness = dict(seed=0)
# name of the encoder and dataset for metrics.json (docs/conventions.md)
run_info = dict(model="vit_base_patch16", dataset="ade20k")
