# The MAE baseline of vitb_openimages_asl_800ep.py (the paper's section 8 compares against MAE): same code, no
# enhancement layer, one branch, MSE.
_base_ = "vitb_openimages_asl_800ep.py"
cfg = dict(model=dict(method="mae", loss="mse"))
