# Frozen-feature probes of a ViT-B/16 on real data: kNN and linear top-1 on ImageNet-1K class folders
# ($ASL_DATASETS/imagenet/{train,val}/<class>/), dense mIoU on ADE20K ($ASL_DATASETS/ADEChallengeData2016, 150
# classes, 0 = "other" ignored). The splits are held in memory as float16 images at 224 px, so the sets are
# subsampled evenly (20 train and 10 val images per ImageNet class, 5,000 ADE20K training images) to bound the
# memory they take; change the caps with probe.classification.max_train=N, probe.dense.max_train=N, ...
_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_base_patch16", img_size=224),
    probe=dict(
        classification=dict(dataset="folder", path="{datasets}/imagenet", max_train=20_000, max_val=10_000),
        dense=dict(max_train=5_000),
        num_workers=16,
    ),
)
