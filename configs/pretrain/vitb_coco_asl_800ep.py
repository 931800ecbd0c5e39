# ViT-B/16 ASL on COCO train2017 images (118k, unlabeled), 800 epochs, batch 4096 = 64 per GPU x 64 GPUs
# (or accum_iter on fewer): lr = 1.5e-4 x 4096 / 256 = 2.4e-3, 40 warmup epochs.
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/coco/train2017"))
