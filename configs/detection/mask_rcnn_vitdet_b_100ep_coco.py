# ViTDet Mask R-CNN, ViT-B/16, COCO train2017 -> val2017. Every value's source: [paper] = the paper's appendix
# (its detection recipe, which "strictly follows" MAE's), [ViTDet] = detectron2's projects/ViTDet
# (mask_rcnn_vitdet_b_100ep), [ours] = this project's choice.
#   Mask R-CNN with ViTDet's backbone, windows of 14, pyramid, heads    [ViTDet] (the paper names no backbone)
#   large-scale jitter, scale range 0.1-2.0                             [paper]
#   1024x1024 input                                                     [ViTDet] (the paper gives no size)
#   batch 64, 100 epochs (184,375 iterations of 118k images)            [paper] (the iteration arithmetic: [ViTDet])
#   AdamW (0.9, 0.999), lr 8e-5, weight decay 0.1                       [paper]
#   half-period cosine, 0.25-epoch linear warmup                        [paper] (warmup factor 0.001: [ViTDet])
#   drop path 0.1                                                       [paper]
#   layer decay 0.7 through asl.optim's rule                            [ViTDet] (not in the paper; ViTDet pairs
#                                                                       0.7 with lr 1e-4, the paper's lr is 8e-5)
#   AMP, fp16 gradient compression, checkpoint / eval periods           [ViTDet] / [ours]
# A detectron2 LazyConfig: python tools/train_det.py configs/coco_vitb.py --num-gpus 8 \
#     train.init_checkpoint=<tools/convert_ckpt.py CKPT --to detectron2 -o FILE>
import torch
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler

from transfer.detection.data import lsj_dataloader
from transfer.detection.optim import vit_param_groups

# --- the schedule, from the dataset size -------------------------------------------------------------------
COCO_TRAIN_IMAGES = 118_000  # train2017 has 118,287 images; ViTDet's arithmetic rounds to 118k
EPOCHS, BATCH = 100, 64  # [paper]
ITERS_PER_EPOCH = COCO_TRAIN_IMAGES / BATCH  # 1,843.75
MAX_ITER = int(EPOCHS * ITERS_PER_EPOCH)  # 100 ep x 118,000 img / 64 img/iter = 184,375 iterations (as ViTDet)
WARMUP_EPOCHS = 0.25  # = 461 iterations [paper]

# --- model: detectron2's model_zoo ViTDet base (ViT-B/16 at 1024, windows of 14 with global blocks 2/5/8/11,
# relative positions, SimpleFeaturePyramid strides 4-32 + max-pool level, LN in pyramid and heads) -------------
model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
model.backbone.net.drop_path_rate = 0.1  # [paper]
model.backbone.net.pretrain_img_size = 224  # the pretraining resolution: pos_embed is interpolated to 64x64
model.backbone.net.pretrain_use_cls_token = True  # MAE/ASL pos_embed carries a cls slot (converter keeps it)

# --- data: COCO in the standard layout under --data-root / $ASL_DATASETS, LSJ -------------------------------
dataloader = lsj_dataloader(train="asl_coco_2017_train", test="asl_coco_2017_val", image_size=1024,  # [ViTDet]
                            total_batch_size=BATCH, min_scale=0.1, max_scale=2.0, num_workers=4)  # LSJ 0.1-2.0 [paper]

# --- optimizer: per-block lr scales 0.7^(13 - layer id) [ViTDet], no weight decay on norms, biases, pos_embed,
# rel_pos (asl.optim's rule) --------------------------------------------------------------------------------------
optimizer = L(torch.optim.AdamW)(
    params=L(vit_param_groups)(lr="${..lr}", weight_decay="${..weight_decay}", layer_decay=0.7, num_layers=12),
    lr=8e-5, betas=(0.9, 0.999), weight_decay=0.1,  # [paper]
)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),  # half-period cosine to 0 [paper]
    warmup_length=WARMUP_EPOCHS / EPOCHS,  # a fraction of max_iter
    warmup_method="linear",
    warmup_factor=0.001,
)

# --- runtime --------------------------------------------------------------------------------------------------
train = model_zoo.get_config("common/train.py").train
train.init_checkpoint = ""  # a file of tools/convert_ckpt.py --to detectron2 (empty: random initialisation)
train.max_iter = MAX_ITER
train.amp.enabled = True
train.ddp.fp16_compression = True
train.checkpointer = dict(period=int(5 * ITERS_PER_EPOCH), max_to_keep=3)  # every 5 epochs (9,218 iterations)
train.eval_period = int(10 * ITERS_PER_EPOCH)  # every 10 epochs, and at the end
train.log_period = 20
train.device = "cuda"
train.seed = -1
