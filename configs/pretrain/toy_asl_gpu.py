# The toy ASL encoder that beats random initialisation in toy detection (docs/detection.md, "An encoder that beats
# random initialisation"): batch 64 (lr 3.75e-4), a 300-epoch cosine schedule stopped after epoch 160 (4,960 of its
# 9,300 steps, where a GPU lease's time limit stopped the measured run; max_iters reproduces that stop exactly).
# ~6.5 min on an H200 shared with two other runs (836 img/s); hours on 2 CPU cores (19 img/s measured).
_base_ = "toy_asl.py"
cfg = dict(
    data=dict(num_workers=4),  # as measured; toy_asl.py's single worker would starve the GPU
    optim=dict(batch_size=64, epochs=300),
    runtime=dict(max_iters=4960, save_every_epochs=20),
)
