"""detectron2 adapter (ViTDet Mask R-CNN)."""
