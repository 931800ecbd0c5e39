# The toy chain with budgets long enough for the comparison to say something (about 50 minutes on a 2-core CPU,
# measured in docs/pipeline.md), where `make demo` (toy.py) only shows the chain in 15 minutes. 10 pretraining
# epochs as in the detection protocol of docs/detection.md, 600 detection and segmentation iterations, and 300
# val scenes so that one classification error is 0.33 points rather than 1.
#   python tools/run_pipeline.py configs/pipeline/toy_long.py --data-root datasets_long
_base_ = "toy.py"
cfg = dict(
    title="Toy scenes (CPU, long budget): transfer of ASL, MAE and random initialisations",
    toy=dict(num_val=300),
    pretrain=dict(overrides=["optim.epochs=10", "runtime.tensorboard=False"]),
    detection=dict(overrides=["train.max_iter=600", "train.eval_period=0"]),
    segmentation=dict(overrides=["train_cfg.max_iters=600"]),
    finetune=dict(overrides=["optim.epochs=15"]),
)
