# The paper's Table 5, row "baseline": MAE ViT-B/16 on ImageNet-1K for 200 epochs [paper], then ImageNet-1K linear
# probing (configs/linprobe/in1k_vitb.py). The large-scale recipe of base.py otherwise [paper], its 40 warmup
# epochs included (the paper gives no separate warmup for 200 epochs). MAE's augmentation only: random resized
# crop + flip. The other rows (vitb_in1k_mae_200ep_<augmentation>.py) add one global augmentation each; the
# pipeline configs/pipeline/vitb_table5_global_aug.py runs all five.
_base_ = "vitb_in1k_mae_800ep.py"
cfg = dict(optim=dict(epochs=200))
