# ViT-B/16 ASL on COCO train2017 images (118k, unlabeled), 800 epochs, batch 4096 (optim.global_batch of base.py:
# 64 per GPU, accum_iter derived from the launch: 8 on 8 GPUs, 1 on 64): lr = 1.5e-4 x 4096 / 256 = 2.4e-3,
# 40 warmup epochs.
# Sources: COCO, 800 epochs (the COCO and ablation setting), batch 4096, blr 1.5e-4, AdamW (0.9, 0.95), wd 0.05,
# 40 warmup epochs [paper]; MAE's decoder (512-d, 8 blocks, 16 heads) [MAE].
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/coco/train2017"))
