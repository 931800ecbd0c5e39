# The toy chain of `make demo` (toy.py) with longer budgets: 40 pretraining epochs, 600 detection and segmentation
# iterations, 15 fine-tuning epochs (a longer run, still small enough for a CPU).
#   python tools/run_pipeline.py configs/pipeline/toy_long.py --data-root datasets_long
_base_ = "toy.py"
cfg = dict(
    title="Toy scenes (CPU, long budget): transfer of ASL, MAE and random initialisations",
    pretrain=dict(overrides=["optim.epochs=40", "runtime.tensorboard=False"]),
    detection=dict(overrides=["train.max_iter=600", "train.eval_period=0"]),
    segmentation=dict(overrides=["train_cfg.max_iters=600"]),
    finetune=dict(overrides=["optim.epochs=15"]),
)
