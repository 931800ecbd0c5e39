# ViT-L/16 ASL on ImageNet-100 + COCO images, 800 epochs (batch 4096: 32 per GPU x 64 GPUs x accum 2).
_base_ = "vitb_in100coco_asl_800ep.py"
cfg = dict(model=dict(arch="vit_large_patch16"), optim=dict(batch_size=32, accum_iter=2))
