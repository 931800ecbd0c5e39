# ViT-B/16 linear probing on ImageNet-100 ($ASL_DATASETS/imagenet with the CMC class list), 90 epochs [paper].
_base_ = "base.py"
cfg = dict()
