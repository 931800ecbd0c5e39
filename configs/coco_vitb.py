# The entry point of `tools/train_det.py configs/coco_vitb.py`: ViTDet Mask R-CNN, ViT-B/16, COCO, the paper's
# 100-epoch recipe with ViTDet's 1024 px input and layer decay 0.7. The recipe, each value with its source
# ([paper] / [ViTDet] / [ours]), lives in configs/detection/mask_rcnn_vitdet_b_100ep_coco.py.
from .detection.mask_rcnn_vitdet_b_100ep_coco import (  # noqa: F401  (a LazyConfig exports the names it holds)
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
