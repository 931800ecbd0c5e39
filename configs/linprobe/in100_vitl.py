# ViT-L/16 linear probing on ImageNet-100 (the paper's Table 4): the ViT-B protocol of base.py ([paper] / [MAE] as
# marked there) on the large encoder.
_base_ = "in100_vitb.py"
cfg = dict(model=dict(arch="vit_large_patch16"))
