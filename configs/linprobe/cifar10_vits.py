# ViT-S/4 on 32x32 CIFAR-10 (random crop + flip), from the small-scale pretraining recipe.
_base_ = "base.py"
cfg = dict(model=dict(arch="vit_small_patch4", img_size=32), data=dict(dataset="cifar10", num_workers=4))
