# The MAE baseline of vitb_in100coco_asl_4000ep.py.
_base_ = "vitb_in100coco_asl_4000ep.py"
cfg = dict(model=dict(method="mae", loss="mse"))
