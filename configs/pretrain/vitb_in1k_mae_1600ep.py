# The paper's Table 3 reference: MAE ViT-B/16 on ImageNet-1K for 1600 epochs (~499k iterations: 1,281,167 images
# // 4096 = 312 per epoch x 1600) [paper], the large-scale recipe of base.py [paper]; the same code as ASL with the
# enhancement layer off, one branch and the MSE loss.
_base_ = "vitb_in1k_mae_800ep.py"
cfg = dict(optim=dict(epochs=1600))
