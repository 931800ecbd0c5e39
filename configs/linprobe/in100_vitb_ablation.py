# The ablation schedule of the paper's linear probing: 200 epochs [paper].
_base_ = "in100_vitb.py"
cfg = dict(optim=dict(epochs=200))
