# Pretraining defaults: ViT-B/16 ASL at 224 px with the paper's large-scale recipe (docs/design.md, Recipes).
# Every [ours] choice of docs/design.md, The method, is a key here, so an ablation flips it with an override.
from asl.data.toy import TOY_SCENES

cfg = dict(
    model=dict(
        arch="vit_base_patch16", img_size=224, method="asl",  # asl | mae
        decoder=dict(embed_dim=512, depth=8, num_heads=16),  # MAE's decoder
        enhance=dict(num_heads=4, dropout=0.5),  # patch-level feature enhancement [paper]
        loss="contrastive",  # contrastive | mse  (MAE: mse)
        temperature=1.0,  # λ of the patch-level contrastive loss [ours: docs/pretraining.md, the toy λ sweep]
        sem_weight=1.0,  # weight of L_SEM [paper: best of 0.1/0.5/1/2]
        mask_ratio=0.75, norm_pix_loss=True,
        decode_mode="batched",  # batched | sequential: the same losses; timings in docs/results.md
        chunk_size=4096, max_negatives=0,  # contrastive logits in chunks of rows; 0 = all masked patches
    ),
    # dataset: folder | shards (tools/make_shards.py) | cifar10 | cifar100; path None = the toy scenes under
    # $ASL_DATASETS (generated if absent, with the `toy` arguments); "{datasets}" in a path stands for $ASL_DATASETS.
    # fast_decode: MAE's transform decodes JPEGs at a reduced DCT scale where the crop allows and sends uint8 to
    # the device (docs/benchmarks.md); False is the PIL + torchvision path
    # crop_scale: the range of MAE's RandomResizedCrop areas, fractions of the image [MAE: 0.2-1]; (1.0, 1.0)
    # keeps the whole of an image of aspect ratio 3/4-4/3 such as the toy scenes (flips only)
    data=dict(dataset="folder", path=None, transform="mae", crop_scale=(0.2, 1.0), num_workers=8,
              file_list_cache=None, fast_decode=True, toy=dict(TOY_SCENES)),
    # global_batch: the recipe's total batch [paper: 4096], whatever the launch: batch_size is per process and
    # accum_iter is derived, global_batch / (batch_size x processes) (64 per GPU: 8 on 8 GPUs, 1 on 64); a launch
    # it does not divide over is refused. lr = blr x global_batch / 256 [MAE's rule]. global_batch=None: the
    # batch is batch_size x processes x accum_iter (None = 1), and so is the lr, e.g. for the toy configs.
    optim=dict(batch_size=64, accum_iter=None, global_batch=4096, blr=1.5e-4, lr=None, weight_decay=0.05,
               betas=(0.9, 0.95), epochs=800, warmup_epochs=40, min_lr=0.0),
    # last.pth every save_every_epochs (and save_every_iters); epoch_NNNN.pth kept every keep_every_epochs (0: none);
    # SIGTERM / SIGUSR1 save at the next step whatever these say
    # eval_every: the frozen-feature probes of the `probe` section (tools/probe.py's) every N epochs and at the end
    # into log.jsonl / tensorboard (0: off); stop_check_every: how often processes agree on a stop signal
    # (None: every step alone, every 10 steps with several processes: docs/cluster.md)
    runtime=dict(seed=0, amp="bf16", compile=False, log_every=20, save_every_epochs=20, save_every_iters=0,
                 keep_every_epochs=100, max_iters=None, tensorboard=True, eval_every=0, stop_check_every=None),
    probe=None,
)
