# Frozen-feature probes on the toy scenes (CPU, seconds): kNN and linear top-1 on the objects of the toy scenes'
# COCO instances (each object: the patch tokens pooled over its mask), dense mIoU on the toy label maps (0
# background, 1-4 the shapes), every image at the toy encoder's input size. They read their own labeled set,
# 6,400 train / 1,200 val scenes of the same generator (asl.data.toy.PROBE_SCENES, docs/toy.md step 5).
from asl.data.toy import PROBE_FOLDER, PROBE_SCENES, TOY_SCENES

_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch8", img_size=TOY_SCENES["size"]),
    probe=dict(
        classification=None,
        objects=dict(name="toy_scenes objects", annotations=None, images=None, min_tokens=0.5),
        dense=dict(name="toy_scenes", path=None, num_classes=5, reduce_zero_label=False),
        toy=dict(PROBE_SCENES),
        toy_folder=PROBE_FOLDER,
        dense_fit=dict(epochs=8),  # 6,400 label maps: 3,200 steps at batch 16
        num_workers=0,
    ),
)
