# The MAE baseline of vitl_in100coco_asl_800ep.py.
_base_ = "vitl_in100coco_asl_800ep.py"
cfg = dict(model=dict(method="mae", loss="mse"))
