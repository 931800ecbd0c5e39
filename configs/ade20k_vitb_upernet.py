# The entry point of `tools/train_seg.py configs/ade20k_vitb_upernet.py`: UperNet, ViT-B/16, ADE20K, 512 crops,
# 8 GPUs x 2 images, 100 epochs. The recipe, each value with its source ([paper] / [mmseg] / [ours]), lives in
# configs/segmentation/upernet_vitb_8xb2_100ep_ade20k.py.
_base_ = ["./segmentation/upernet_vitb_8xb2_100ep_ade20k.py"]
