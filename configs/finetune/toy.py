# Toy fine-tuning: the toy ViT on the toy classification task, CPU, minutes.
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch16", img_size=128),
    data=dict(dataset="toy", num_workers=1),
    optim=dict(batch_size=20, blr=1e-3, epochs=15, warmup_epochs=2),
    runtime=dict(amp="none", log_every=10, eval_every=5),
)
