# ADE20K UperNet on a ViT-L/16 encoder: the ViT-B recipe (configs/ade20k_vitb_upernet.py) with the large encoder.
# The paper gives no ViT-L segmentation values beyond its one recipe; [ours] here: outputs of blocks 8/12/16/24
# (0-based 7/11/15/23, as BEiT-L), drop path 0.2 [ours] (the paper states no segmentation drop path; 0.1 is
# [mmseg]'s ViT-B value), UperNet width 1024. Layer decay 0.65 [paper], lr / wd [mmseg], batch and schedule as
# for ViT-B.
_base_ = ["./upernet_vitb_8xb2_100ep_ade20k.py"]

model = dict(
    backbone=dict(embed_dims=1024, num_layers=24, num_heads=16, drop_path_rate=0.2, out_indices=[7, 11, 15, 23]),
    neck=dict(embed_dim=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024))
run_info = dict(model="vit_large_patch16")
