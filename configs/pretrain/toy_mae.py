# The MAE baseline of toy_asl.py.
_base_ = "toy_asl.py"
cfg = dict(model=dict(method="mae", loss="mse"))
