# ViT-S/4 linear probing on 32x32 CIFAR-10, after the small-scale pretraining (configs/pretrain/vits_cifar10_*).
# The protocol: the paper's appendix says only that its CIFAR downstream settings "follow [7]" (RandSAC, Hua et
# al., 2022) and gives none of their values. This config does not reproduce [7]'s protocol: it is MAE's linear
# probing, the paper's ImageNet recipe (configs/linprobe/base.py: LARS, blr 0.1, batch 16384, 90 epochs, ...)
# applied at 32 px [ours], with CIFAR's crop: random crop with 4 px padding + flip instead of RandomResizedCrop,
# and a resize-only evaluation [ours]. At batch 16384 an epoch of CIFAR's 50,000 images is 3 steps.
_base_ = "base.py"
cfg = dict(model=dict(arch="vit_small_patch4", img_size=32), data=dict(dataset="cifar10", num_workers=4))
