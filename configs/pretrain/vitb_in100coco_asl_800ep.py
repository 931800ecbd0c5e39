# ViT-B/16 ASL on ImageNet-100 + COCO images in one unlabeled folder, 800 epochs [paper: Table 4]; base.py's
# large-scale recipe [paper]. Build the folder with tools/build_in100_coco.py.
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/in100_coco"), optim=dict(epochs=800))
