# Linear probing: MAE's protocol, as the paper's appendix gives it (its Table 1 and section 3.1) [paper]: frozen
# encoder, BatchNorm without affine before the linear head, LARS momentum 0.9, wd 0, blr 0.1 (lr = blr x batch /
# 256 = 6.4 at batch 16384 = 512 per GPU x 32 GPUs, or accum_iter), cosine with 10 warmup epochs, 90 epochs (200
# for ablations), RandomResizedCrop. Not in the paper, from MAE's code [MAE]: the horizontal flip, cls token, head
# init std 0.01, RandomResizedCrop's default area range 0.08-1.
from asl.data.toy import TOY_SCENES

cfg = dict(
    model=dict(arch="vit_base_patch16", img_size=224, init=None, init_name=None, pool="cls", drop_path=0.0,
               head_init_std=0.01),
    # dataset: toy | imagenet100 | folder | cifar10 | cifar100; path default: the layout under $ASL_DATASETS.
    # cache_features: compute the frozen features once with the eval transform (no random crops) and train the
    # head on them; valid because the encoder is frozen and deterministic, but it drops the crop augmentation of
    # the protocol, so use it for quick ablations, not for paper numbers.
    data=dict(dataset="imagenet100", path=None, num_workers=10, cache_features=False,
              toy=dict(TOY_SCENES)),
    # global_batch: the total batch whatever the launch (accum_iter = global_batch / (batch_size x processes),
    # derived; a launch it does not divide over is refused; lr = blr x global_batch / 256). None: the batch is
    # batch_size x processes x accum_iter (None = 1), as the toy configs train (they set it to None).
    optim=dict(batch_size=512, accum_iter=None, global_batch=16384, blr=0.1, lr=None, weight_decay=0.0,
               momentum=0.9, epochs=90, warmup_epochs=10, min_lr=0.0),
    aug=dict(crop_scale=(0.08, 1.0)),  # RandomResizedCrop area fraction (MAE: torchvision default)
    # stop_check_every: how often processes agree on a stop signal (None: every step alone, every 10 steps with
    # several processes: docs/cluster.md)
    runtime=dict(seed=0, amp="bf16", log_every=20, eval_every=1, save_every_iters=0, max_iters=None,
                 tensorboard=True, stop_check_every=None),
)
