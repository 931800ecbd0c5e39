# ViT-B/16 fine-tuning on ImageNet-100 ($ASL_DATASETS/imagenet with the CMC class list), 100 epochs [paper].
_base_ = "base.py"
cfg = dict()
