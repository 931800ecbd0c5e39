# ViT-S (12 x 384-d, 6 heads), patch 4 on 32x32 CIFAR-10 (8x8 tokens); the decoder has the encoder's width and
# heads; batch 512 (optim.global_batch: one GPU at 512, or e.g. optim.batch_size=64 on 8 GPUs; a launch the batch
# does not divide over is refused), AdamW betas (0.9, 0.999), wd 0.05, blr 1e-3, 10 warmup epochs, 1600 epochs,
# crop + flip.
# Enhancement layer for ViT-S: 384-d, 4 heads, dropout 0.5 [paper].
# Sources: encoder, patch 4, the decoder's width and heads, batch, optimizer, schedule, crop + flip [paper]; the
# decoder's depth 8 [MAE's: the paper gives none]; the crop's 4 px padding [ours].
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_small_patch4", img_size=32, decoder=dict(embed_dim=384, depth=8, num_heads=6)),
    data=dict(dataset="cifar10", transform="cifar", num_workers=4),
    optim=dict(batch_size=512, global_batch=512, blr=1e-3, betas=(0.9, 0.999), epochs=1600, warmup_epochs=10),
)
