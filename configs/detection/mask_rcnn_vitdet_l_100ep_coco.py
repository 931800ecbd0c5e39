# ViTDet Mask R-CNN, ViT-L/16, COCO: the paper's recipe of mask_rcnn_vitdet_b_100ep_coco.py (one formula for all
# models [paper]: 100 epochs, batch 64, lr 8e-5, wd 0.1, drop path 0.1, half-period cosine, 0.25-epoch warmup) on
# the large encoder. Sources: [paper] = the paper's appendix, [ViTDet] = detectron2's projects/ViTDet
# mask_rcnn_vitdet_l_100ep, [ours] = this project's choice.
#   24 blocks, 1024-d, 16 heads                  ViT-L/16 (the pretrained encoder)
#   global attention in blocks 5/11/17/23         [ViTDet] (windows of 14 elsewhere)
#   drop path 0.1                                 [paper] ("0.1 drop path", the same for all models)
#   layer decay 0.8 over 24 blocks                [ViTDet] (the paper gives no layer decay; 0.7^24 would all but
#                                                 freeze the lower blocks)
# ViTDet's own ViT-L values (drop path 0.4, lr 1e-4): mask_rcnn_vitdet_l_100ep_coco_vitdet_values.py.
# A LazyConfig exports the names it holds: all five are imported, the data and schedule unchanged.
from .mask_rcnn_vitdet_b_100ep_coco import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.net.embed_dim = 1024
model.backbone.net.depth = 24
model.backbone.net.num_heads = 16
model.backbone.net.drop_path_rate = 0.1  # [paper]
model.backbone.net.window_block_indexes = [i for i in range(24) if i not in (5, 11, 17, 23)]  # [ViTDet]

optimizer.params.layer_decay = 0.8  # [ViTDet]
optimizer.params.num_layers = 24
