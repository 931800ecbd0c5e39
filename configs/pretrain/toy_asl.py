# Toy ASL: a tiny ViT (128-d, 4 blocks, 4 heads, patch 8) on the 64 px toy scenes, small enough for a CPU.
# Scene content, sizes, lr and length were chosen for signal per CPU-second (docs/toy.md); runtime.eval_every=N
# logs the frozen-feature probes of configs/probe/toy.py every N epochs.
from asl.config import load_config

_base_ = "base.py"
cfg = dict(
    # 256 negatives per step (model.max_negatives), not all 1,536 masked patches of a batch: all probe somewhat
    # better in kNN and linear top-1 but take several times the CPU time, which the 15-minute demo cannot pay
    # (docs/sweeps/negatives.md); the large-scale configs use all
    # L_SEM at 0.1, not the paper's 1: on the toy scenes its weight hurts the frozen features steadily from 0.5 up
    # (docs/sweeps/sem_weight.md); the large-scale configs keep the paper's value
    model=dict(arch="vit_toy_patch8", img_size=64, decoder=dict(embed_dim=96, depth=1, num_heads=4),
               max_negatives=256, sem_weight=0.1),
    # the whole scene, flipped or not: the toy's objects show at one scale in every scene, and MAE's crops (0.2-1
    # of the area) spend the few minutes on scales no probe or transfer sees (docs/toy.md, step 10)
    data=dict(num_workers=1, crop_scale=(1.0, 1.0)),
    # batch 32: twice the steps of batch 64 for about the same CPU time per epoch on the toy (docs/toy.md, step 10)
    optim=dict(batch_size=32, global_batch=None, blr=6e-3, epochs=25, warmup_epochs=2),  # batch per process
    runtime=dict(amp="none", log_every=10, save_every_epochs=1),
    probe=load_config(__file__.replace("pretrain/toy_asl.py", "probe/toy.py"))["probe"],
)
