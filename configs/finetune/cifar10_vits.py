# ViT-S/4 fine-tuning on 32x32 CIFAR-10, after the small-scale pretraining (configs/pretrain/vits_cifar10_*).
# The protocol: the paper's appendix says only that its CIFAR downstream settings "follow [7]" (RandSAC, Hua et
# al., 2022) and gives none of their values. This config does not reproduce [7]'s protocol: it is MAE's
# fine-tuning, the paper's ImageNet recipe (configs/finetune/base.py: AdamW, blr 1e-3, layer decay 0.75, batch
# 1024, 100 epochs, RandAug, mixup, cutmix, drop path 0.1, ...) applied at 32 px [ours]: timm's training
# transform as for ImageNet (RandomResizedCrop with area 0.08-1, flip, RandAug, random erasing) and a resize-only
# evaluation [ours].
_base_ = "base.py"
cfg = dict(model=dict(arch="vit_small_patch4", img_size=32), data=dict(dataset="cifar10", num_workers=4))
