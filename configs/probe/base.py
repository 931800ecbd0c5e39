# Frozen-feature probes (tools/probe.py, asl.probe): the protocol every probe config shares [ours]. kNN is DINO's
# (k 20, T 0.07); the linear probes are trained with AdamW and a cosine schedule on standardised features.
cfg = dict(
    model=dict(arch="vit_base_patch16", img_size=224, init=None, init_name=None),
    probe=dict(
        # kNN and linear on images: any data.dataset of linear probing (toy | imagenet100 | folder | cifar10 |
        # cifar100); or, with classification=None, on the objects of a COCO-format instance set (`objects`: the
        # patch tokens pooled over each object's mask; paths with {split} = train | val, None = the toy scenes')
        classification=dict(dataset="folder", path=None, max_train=None, max_val=None),
        objects=None,
        # dense: images/{training,validation} + annotations/{training,validation} (ADE20K's layout)
        dense=dict(name="ade20k", path="{datasets}/ADEChallengeData2016", num_classes=150, ignore_index=255,
                   reduce_zero_label=True, max_train=None, max_val=None),
        toy=None,  # the toy scenes' generator arguments, when the data is the toy scenes
        toy_folder="toy_scenes",  # where under the dataset root the toy scenes are (generated there if absent)
        knn=dict(k=20, temperature=0.07),
        linear=dict(epochs=100, lr=1e-3, weight_decay=0.05, batch_size=256),
        dense_fit=dict(epochs=30, lr=1e-2, weight_decay=1e-4, batch_size=16),
        batch_size=128, num_workers=4,
    ),
    optim=dict(batch_size=128, global_batch=None, accum_iter=None),  # one process, nothing is trained
    runtime=dict(seed=0, amp="none", tensorboard=False),
)
