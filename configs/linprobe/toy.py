# Toy linear probing: the toy ViT on the toy classification set (a square crop around each object of the toy
# scenes, 1.5x its box, resized to 64 px; label = its shape; asl.data.toy.classification_objects), CPU, minutes.
# Random crops keep >= 35 % of the area so the object stays in view (with data.cache_features=True, as the
# pipelines use it, there are no random crops); the encoder is the toy pretraining one, at its own 64 px. The head
# reads the mean patch token, not the cls token [ours]: in a few hundred pretraining steps the cls token, which no
# loss of the toy pretraining acts on directly, holds too little to probe (docs/toy.md, step 4).
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch8", img_size=64, pool="avg"),
    data=dict(dataset="toy", num_workers=1),
    # LARS: relative step = lr x 0.001; global_batch None: the batch is per process
    optim=dict(batch_size=50, global_batch=None, blr=30.0, epochs=100, warmup_epochs=10),
    aug=dict(crop_scale=(0.35, 1.0)),
    runtime=dict(amp="none", log_every=10, eval_every=5),
)
