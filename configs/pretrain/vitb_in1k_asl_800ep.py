# ViT-B/16 ASL on ImageNet-1K train images (labels unused), 800 epochs.
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/imagenet/train", file_list_cache="{datasets}/imagenet/train_files.json"))
