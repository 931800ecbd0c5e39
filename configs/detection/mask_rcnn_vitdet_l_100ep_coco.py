# ViTDet Mask R-CNN, ViT-L/16: the ViT-B recipe of mask_rcnn_vitdet_b_100ep_coco.py with ViT-L's own
# depth-specific settings as in ViTDet (mask_rcnn_vitdet_l_100ep): 24 blocks, 1024-d, 16 heads, global attention
# in blocks 5/11/17/23, drop path 0.4, layer decay 0.8 over 24 blocks. Same schedule (100 epochs, batch 64,
# lr 8e-5). A LazyConfig exports the names it holds: all five are imported, the data and schedule unchanged.
from .mask_rcnn_vitdet_b_100ep_coco import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.net.embed_dim = 1024
model.backbone.net.depth = 24
model.backbone.net.num_heads = 16
model.backbone.net.drop_path_rate = 0.4
model.backbone.net.window_block_indexes = [i for i in range(24) if i not in (5, 11, 17, 23)]

optimizer.params.layer_decay = 0.8
optimizer.params.num_layers = 24

