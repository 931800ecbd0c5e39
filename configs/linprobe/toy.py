# Toy linear probing: the toy ViT on the toy classification task (shape of the largest object), CPU, minutes.
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch16", img_size=128),
    data=dict(dataset="toy", num_workers=1),
    optim=dict(batch_size=50, blr=10.0, epochs=40, warmup_epochs=4),  # LARS: relative step = lr x 0.001
    runtime=dict(amp="none", log_every=10, eval_every=5),
)
