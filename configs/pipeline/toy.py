# The toy chain of `make demo`: everything small enough for a CPU (two one-thread steps at once).
# Budgets are equal for every initialisation: ASL and MAE pretrain for the same 25 epochs (most of the time); the
# frozen-feature probes measure the encoders as they are; linear probing, fine-tuning, UperNet and Mask R-CNN
# train briefly. Measured numbers: docs/results.md; the toy's design: docs/toy.md.
import os

from asl.data.toy import PROBE_SCENES, TOY_SCENES

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="Toy scenes (CPU): transfer of ASL, MAE and random initialisations",
    inits=["asl", "mae", "random"],
    jobs=2,  # two one-thread steps at once: more work per second from 2 cores than one two-thread step
    # the long transfers first, in this order, and linear probing (the shortest) last to fill the gaps: the run ends
    # sooner than in the stages' own order, where a long run kept one core alone at the end (docs/toy.md, step 8)
    start_first=["detection", "segmentation", "probe", "finetune"],
    seed=None,  # every stage's training seed (seed=1 on the command line); None: each config's own (0)
    toy=dict(TOY_SCENES),
    probe_toy=dict(PROBE_SCENES),  # the frozen-feature probes' labeled scenes (configs/probe/toy.py)
    # ASL and MAE pretrain at once, one thread each (not alone with both, the default): the toy's small steps gain
    # little from a second thread, and once MAE is done the random initialisation's transfers take its core
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/toy_asl.py", mae=f"{CONFIGS}/pretrain/toy_mae.py"),
                  overrides=["runtime.tensorboard=False"], alone=False),
    probe=dict(config=f"{CONFIGS}/probe/toy.py"),
    # detection and UperNet are the demo's longest transfers, their lengths chosen for a slower 2-core machine too
    # (docs/toy.md, steps 6 and 8; docs/results.md, run K); Mask R-CNN's 400 iterations are where learning has taken
    # off from every initialisation (step 9)
    detection=dict(config=f"{CONFIGS}/detection/mask_rcnn_vitdet_toy_1000it.py",
                   overrides=["train.max_iter=400", "train.eval_period=400"]),
    segmentation=dict(config=f"{CONFIGS}/segmentation/upernet_toy_1xb8_toyscenes.py",
                      overrides=["train_cfg.max_iters=100"]),
    linprobe=dict(config=f"{CONFIGS}/linprobe/toy.py", overrides=["data.cache_features=True"]),
    finetune=dict(config=f"{CONFIGS}/finetune/toy.py", overrides=["optim.epochs=10"]),
)
