# End-to-end fine-tuning: MAE's protocol, as the paper's appendix gives it (its Table 2) [paper]: AdamW
# (0.9, 0.999), blr 1e-3 (lr = blr x batch / 256), wd 0.05, layer-wise lr decay 0.75 (asl.optim's rule), batch 1024
# (= 32 per GPU x 32 GPUs, or accum_iter), cosine with 5 warmup epochs, 100 epochs, RandAug(9, 0.5), label
# smoothing 0.1, mixup 0.8, cutmix 1.0, drop path 0.1 (Table 2's one value: it gives none per model). Not in the
# paper, from MAE's code [MAE]: global pooling + fc_norm, random erasing 0.25, head init std 2e-5, min lr 1e-6.
from asl.data.toy import TOY_SCENES

cfg = dict(
    model=dict(arch="vit_base_patch16", img_size=224, init=None, init_name=None, pool="avg", drop_path=0.1,
               head_init_std=2e-5),
    data=dict(dataset="imagenet100", path=None, num_workers=10,
              toy=dict(TOY_SCENES)),
    # global_batch: the total batch whatever the launch (accum_iter = global_batch / (batch_size x processes),
    # derived; a launch it does not divide over is refused; lr = blr x global_batch / 256). None: the batch is
    # batch_size x processes x accum_iter (None = 1), as the toy configs train (they set it to None).
    optim=dict(batch_size=32, accum_iter=None, global_batch=1024, blr=1e-3, lr=None, weight_decay=0.05,
               layer_decay=0.75, betas=(0.9, 0.999), epochs=100, warmup_epochs=5, min_lr=1e-6),
    aug=dict(crop_scale=(0.08, 1.0), rand_aug="rand-m9-mstd0.5-inc1", reprob=0.25, mixup=0.8, cutmix=1.0,
             smoothing=0.1),
    # stop_check_every: how often processes agree on a stop signal (None: every step alone, every 10 steps with
    # several processes: docs/cluster.md)
    runtime=dict(seed=0, amp="bf16", log_every=20, eval_every=1, save_every_iters=0, max_iters=None,
                 tensorboard=True, stop_check_every=None),
)
