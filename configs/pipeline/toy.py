# The toy chain of `make demo`: everything on the CPU. Budgets are equal for every initialisation; see
# docs/pipeline.md for what they buy and the measured numbers.
import os

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="Toy scenes (CPU): transfer of ASL, MAE and random initialisations",
    inits=["asl", "mae", "random"],
    toy=dict(num_unlabeled=2000, num_train=200, num_val=100, size=128, seed=0),
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/toy_asl.py", mae=f"{CONFIGS}/pretrain/toy_mae.py"),
                  overrides=["optim.epochs=4", "runtime.tensorboard=False"]),
    detection=dict(config=f"{CONFIGS}/coco_toy.py", overrides=["train.max_iter=300"]),
    segmentation=dict(config=f"{CONFIGS}/segmentation/toy_upernet.py", overrides=["train_cfg.max_iters=300"]),
    linprobe=dict(config=f"{CONFIGS}/linprobe/toy.py", overrides=["data.cache_features=True"]),
    finetune=dict(config=f"{CONFIGS}/finetune/toy.py", overrides=[]),
)
