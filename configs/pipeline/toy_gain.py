# The toy comparison that CI runs (tests/test_transfer_gain.py, about 24 minutes on a 2-core CPU with the transfer
# runs two at a time): is a CPU-sized ASL pretraining worth more than random initialisation on the toy scenes?
# Of the budgets measured in docs/pipeline.md, 30 pretraining epochs are the shortest that put fine-tuning clearly
# above random weights (20 epochs left it at chance; linear probes were 2-5 points above random features at 15-20
# epochs, 13 at 30). 256 sampled contrastive candidates per step (model.max_negatives) cut the CPU step from 0.70
# to 0.44 s. Detection is left out: no budget measured so far puts ASL above random there (docs/detection.md).
#   python tools/run_pipeline.py configs/pipeline/toy_gain.py --data-root datasets_gain
_base_ = "toy.py"
cfg = dict(
    title="Toy scenes (CPU): ASL (30 epochs) against random initialisation",
    inits=["asl", "random"],
    detection=None,
    pretrain=dict(overrides=["optim.epochs=30", "model.max_negatives=256", "runtime.tensorboard=False"]),
    segmentation=dict(overrides=["train_cfg.max_iters=600"]),
    finetune=dict(overrides=["optim.epochs=15"]),
)
