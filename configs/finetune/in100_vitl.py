# ViT-L/16: MAE's ViT-L recipe uses layer decay 0.75 and drop path 0.2 (50 epochs on IN-1K; 100 kept here).
_base_ = "in100_vitb.py"
cfg = dict(model=dict(arch="vit_large_patch16", drop_path=0.2))
