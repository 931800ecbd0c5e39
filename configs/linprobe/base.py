# Linear probing (MAE's protocol, docs/design.md, Recipes): frozen encoder, cls token, BatchNorm without affine +
# linear head (trunc-normal std 0.01), LARS momentum 0.9, wd 0, blr 0.1 (lr = blr x batch / 256), batch 16384
# (= 512 per GPU x 32 GPUs, or accum_iter), cosine with 10 warmup epochs, 90 epochs, RandomResizedCrop + flip.
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
    optim=dict(batch_size=512, accum_iter=1, blr=0.1, lr=None, weight_decay=0.0, momentum=0.9, epochs=90,
               warmup_epochs=10, min_lr=0.0),
    aug=dict(crop_scale=(0.08, 1.0)),  # RandomResizedCrop area fraction (MAE: torchvision default)
    runtime=dict(seed=0, amp="bf16", log_every=20, eval_every=1, save_every_iters=0, max_iters=None,
                 tensorboard=True),
)
