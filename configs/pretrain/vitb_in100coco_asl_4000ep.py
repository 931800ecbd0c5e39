# ViT-B/16 ASL on ImageNet-100 + COCO images in one unlabeled folder (e.g. symlinks to both), 4000 epochs.
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/in100_coco"), optim=dict(epochs=4000))
