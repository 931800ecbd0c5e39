# ADE20K semantic segmentation, UperNet on a ViT-B/16 encoder. Every value's source: [paper] = the paper's appendix
# (its segmentation recipe, which "fully follows" MAE's), [mmseg] = mmsegmentation's MAE config
# (mae-base_upernet_8xb2-amp-160k_ade20k-512x512), [ours] = this project's choice.
#   UperNet                                                          [paper] ([mmseg]: the heads' sizes)
#   FCN auxiliary head                                               [mmseg] (not in the paper)
#   AdamW                                                            [paper]
#   512x512 crops, batch 16                                          [paper]
#   layer-wise lr decay 0.65                                         [paper] (also [mmseg]'s value)
#   100 epochs end to end (126,313 iterations of 20,210 images)      [paper] ([mmseg]: 160k iterations)
#   lr 1e-4, betas (0.9, 0.999), weight decay 0.05                   [mmseg] (not in the paper)
#   1,500 linear-warmup iterations, then poly (power 1) decay to 0   [mmseg] (not in the paper)
#   drop path 0.1                                                    [mmseg] (not in the paper for segmentation)
#   outputs of blocks 4/6/8/12, Feature2Pyramid, layer scale 1.0,    [mmseg]
#   sliding-window test (stride 341), AMP
#
#   python tools/convert_ckpt.py work_dirs/pretrain/vitb_coco_asl_800ep/checkpoints/last.pth --to mmseg \
#       --img-size 512 -o work_dirs/weights/vitb_asl_mmseg.pth
#   torchrun --nproc_per_node 8 tools/train_seg.py configs/ade20k_vitb_upernet.py \
#       --init work_dirs/weights/vitb_asl_mmseg.pth
#
# Reference: MAE ViT-B + UperNet, 48.1 mIoU (single scale); the paper reports ASL 49.7 / MAE 47.8 after
# OpenImages pretraining.
_base_ = ["./_base_upernet_mae.py"]

crop_size = (512, 512)
num_classes = 150
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        img_size=crop_size,
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        drop_path_rate=0.1,  # [mmseg]
        out_indices=[3, 5, 7, 11]),  # blocks 4, 6, 8 and 12 (0-based 3/5/7/11)
    # four scales from the single-scale ViT: x4 (2 deconvs), x2 (deconv), x1, x0.5 (max pool) -> strides 4..32
    neck=dict(type="Feature2Pyramid", embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=num_classes),
    auxiliary_head=dict(in_channels=768, num_classes=num_classes),
    test_cfg=dict(mode="slide", crop_size=crop_size, stride=(341, 341)))

# Batch 16 = 8 GPUs x 2 images (mmseg's convention: batch_size is per GPU). On another number of GPUs keep the
# product at 16 (e.g. --cfg-options train_dataloader.batch_size=4 on 4 GPUs).
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# 100 epochs over ADE20K's 20,210 training images at batch 16: 20,210 x 100 / 16 = 126,312.5 -> 126,313 iters
ade20k_train_images = 20210
epochs = 100  # [paper]
batch_size = 16  # [paper]
max_iters = -(-ade20k_train_images * epochs // batch_size)  # ceil: 126313
warmup_iters = 1500  # linear warmup [mmseg], then poly (power 1.0) decay to 0 [mmseg]

optim_wrapper = dict(
    type="AmpOptimWrapper",  # mixed precision (mmseg ignores fp16=dict(...)); fp32 on a CPU, see train_seg.py
    loss_scale="dynamic",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),  # AdamW [paper]; values [mmseg]
    paramwise_cfg=dict(layer_decay_rate=0.65))  # [paper]
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type="PolyLR", eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=16000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=16000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=16)
run_info = dict(model="vit_base_patch16", dataset="ade20k", train_images=ade20k_train_images)
