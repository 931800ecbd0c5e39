# Toy fine-tuning: the toy ViT on the toy classification set (a square crop around each object of the toy scenes,
# 1.5x its box, resized to 64 px; label = its shape), small enough for a CPU. Random crops keep >= 35 % of the
# area so the object stays in view. No RandAug, mixup or cutmix [ours]: on 64 px crops of flat shapes they turn
# one shape into another (a shear, a pasted corner) and, with ~440 crops and 15 epochs, kept every
# initialisation at the majority class (docs/toy.md, step 4).
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch8", img_size=64),
    data=dict(dataset="toy", num_workers=1),
    optim=dict(batch_size=20, global_batch=None, blr=1e-2, epochs=15, warmup_epochs=2),
    aug=dict(crop_scale=(0.35, 1.0), rand_aug=None, mixup=0.0, cutmix=0.0),
    runtime=dict(amp="none", log_every=10, eval_every=5),
)
