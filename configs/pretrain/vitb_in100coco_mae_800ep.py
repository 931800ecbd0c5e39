# The MAE baseline of vitb_in100coco_asl_800ep.py.
_base_ = "vitb_in100coco_asl_800ep.py"
cfg = dict(model=dict(method="mae", loss="mse"))
