# ViTDet Mask R-CNN, ViT-B/16, COCO train2017 -> val2017, with the paper's recipe (docs/design.md, Recipes; the
# 1024 px input and layer decay 0.7 are ViTDet's, not the paper's):
# LSJ 1024 (scale 0.1-2.0), batch 64, 100 epochs, AdamW (0.9, 0.999), lr 8e-5, wd 0.1, half-period cosine with a
# 0.25-epoch linear warmup, drop path 0.1, layer decay 0.7 through asl.optim's rule, AMP.
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
EPOCHS, BATCH = 100, 64
ITERS_PER_EPOCH = COCO_TRAIN_IMAGES / BATCH  # 1,843.75
MAX_ITER = int(EPOCHS * ITERS_PER_EPOCH)  # 100 ep x 118,000 img / 64 img/iter = 184,375 iterations (as ViTDet)
WARMUP_EPOCHS = 0.25  # = 461 iterations

# --- model: detectron2's model_zoo ViTDet base (ViT-B/16 at 1024, windows of 14 with global blocks 2/5/8/11,
# relative positions, SimpleFeaturePyramid strides 4-32 + max-pool level, LN in pyramid and heads) -------------
model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
model.backbone.net.drop_path_rate = 0.1
model.backbone.net.pretrain_img_size = 224  # the pretraining resolution: pos_embed is interpolated to 64x64
model.backbone.net.pretrain_use_cls_token = True  # MAE/ASL pos_embed carries a cls slot (converter keeps it)

# --- data: COCO in the standard layout under --data-root / $ASL_DATASETS, LSJ -------------------------------
dataloader = lsj_dataloader(train="asl_coco_2017_train", test="asl_coco_2017_val", image_size=1024,
                            total_batch_size=BATCH, min_scale=0.1, max_scale=2.0, num_workers=4)

# --- optimizer: per-block lr scales 0.7^(13 - layer id), no weight decay on norms, biases, pos_embed, rel_pos --
optimizer = L(torch.optim.AdamW)(
    params=L(vit_param_groups)(lr="${..lr}", weight_decay="${..weight_decay}", layer_decay=0.7, num_layers=12),
    lr=8e-5, betas=(0.9, 0.999), weight_decay=0.1,
)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),  # half-period cosine to 0
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
