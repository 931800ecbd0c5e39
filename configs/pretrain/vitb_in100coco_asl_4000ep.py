# ViT-B/16 ASL on ImageNet-100 + COCO images in one unlabeled folder, 4000 epochs [paper: Table 3, ~236k
# iterations = 59 per epoch (244,976 images // 4096) x 4000]; base.py's large-scale recipe [paper]. Build the
# folder with tools/build_in100_coco.py.
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/in100_coco"), optim=dict(epochs=4000))
