# The MAE baseline of vits_cifar10_asl_1600ep.py.
_base_ = "vits_cifar10_asl_1600ep.py"
cfg = dict(model=dict(method="mae", loss="mse"))
