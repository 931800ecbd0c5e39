# The MAE baseline of vitb_coco_asl_800ep.py: same code, no enhancement layer, one branch, MSE.
_base_ = "vitb_coco_asl_800ep.py"
cfg = dict(model=dict(method="mae", loss="mse"))
