# Frozen-feature probes on the toy scenes (CPU, seconds): kNN and linear top-1 on the objects of the toy scenes'
# COCO instances (each object: the patch tokens pooled over its mask), dense mIoU on the toy label maps (0
# background, 1-4 the shapes), every image at the toy encoder's input size.
from asl.data.toy import TOY_SCENES

_base_ = "base.py"
cfg = dict(
    model=dict(arch="vit_toy_patch8", img_size=TOY_SCENES["size"]),
    probe=dict(
        classification=None,
        objects=dict(name="toy_scenes objects", annotations=None, images=None, min_tokens=0.5),
        dense=dict(name="toy_scenes", path=None, num_classes=5, reduce_zero_label=False),
        toy=dict(TOY_SCENES),
        num_workers=0,
    ),
)
