# Toy ASL: a tiny ViT (192-d, 6 blocks, 3 heads, patch 16) on the 128 px toy scenes, a few minutes on a CPU.
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch16", img_size=128, decoder=dict(embed_dim=128, depth=2, num_heads=4)),
    data=dict(num_workers=1),
    optim=dict(batch_size=32, global_batch=None, blr=1.5e-3, epochs=10, warmup_epochs=1),  # batch per process
    runtime=dict(amp="none", log_every=10, save_every_epochs=1),
)
