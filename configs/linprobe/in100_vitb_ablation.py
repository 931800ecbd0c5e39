# The ablation schedule of the paper: 200 epochs.
_base_ = "in100_vitb.py"
cfg = dict(optim=dict(epochs=200))
