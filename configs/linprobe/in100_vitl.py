_base_ = "in100_vitb.py"
cfg = dict(model=dict(arch="vit_large_patch16"))
