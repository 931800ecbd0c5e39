_base_ = "base.py"
cfg = dict(model=dict(arch="vit_small_patch4", img_size=32), data=dict(dataset="cifar10", num_workers=4))
