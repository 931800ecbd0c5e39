# ViT-B/16 linear probing on ImageNet-1K (all 1000 classes of $ASL_DATASETS/imagenet/{train,val}), for the paper's
# Table 5. MAE's protocol of base.py ([paper] / [MAE] as marked there), 90 epochs: the paper does not say whether
# Table 5 used its main schedule (90 epochs, MAE's on ImageNet) or its ablation one (200: optim.epochs=200)
# [ours: 90].
_base_ = "base.py"
cfg = dict(data=dict(dataset="folder"))
