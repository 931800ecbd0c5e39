# The toy chain of `make demo`: everything on the CPU in under 10 minutes (two steps at once). Budgets are equal
# for every initialisation, and sized to show the whole chain, not to rank the initialisations: 60 detection and 100
# segmentation iterations leave box AP near 0 and mIoU at the all-background score. configs/pipeline/toy_long.py
# has the budgets of a comparison; docs/pipeline.md has both sets of measured numbers.
import os

from asl.data.toy import TOY_SCENES

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="Toy scenes (CPU): transfer of ASL, MAE and random initialisations",
    inits=["asl", "mae", "random"],
    jobs=2,  # two one-thread steps at once: more work per second from 2 cores than one two-thread step
    toy=dict(TOY_SCENES),
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/toy_asl.py", mae=f"{CONFIGS}/pretrain/toy_mae.py"),
                  overrides=["optim.epochs=2", "runtime.tensorboard=False"]),
    detection=dict(config=f"{CONFIGS}/detection/mask_rcnn_vitdet_toy_1000it.py",
                   overrides=["train.max_iter=60"]),
    segmentation=dict(config=f"{CONFIGS}/segmentation/upernet_toy_1xb8_toyscenes.py",
                      overrides=["train_cfg.max_iters=100"]),
    linprobe=dict(config=f"{CONFIGS}/linprobe/toy.py", overrides=["data.cache_features=True"]),
    finetune=dict(config=f"{CONFIGS}/finetune/toy.py", overrides=["optim.epochs=10"]),
)
