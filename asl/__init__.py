"""ASL core: pure PyTorch + timm (never imports detectron2 or mmseg)."""
