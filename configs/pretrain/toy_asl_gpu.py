# The toy ASL encoder that beats random initialisation in toy detection (docs/detection.md, "An encoder that beats
# random initialisation", with its timings): batch 64 (lr 3.75e-4), a 300-epoch cosine schedule stopped after epoch
# 160 (step 4,960 of 9,300), before the cosine's low-lr tail. Meant for a GPU.
_base_ = "toy_asl.py"
cfg = dict(
    # one worker (toy_asl.py) would starve a GPU; MAE's crops, as in the run docs/detection.md reports
    data=dict(num_workers=4, crop_scale=(0.2, 1.0)),
    optim=dict(batch_size=64, epochs=300),
    runtime=dict(max_iters=4960, save_every_epochs=20),
)
