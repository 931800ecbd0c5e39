# Toy ViTDet Mask R-CNN: the ViT-B COCO recipe shrunk to the 64 px toy scenes, small enough for a CPU.
# Encoder = the toy pretraining encoder (vit_toy_patch8: 128-d, 4 blocks, 4 heads, patch 8, 64 px, cls slot in
# pos_embed), so a converted toy checkpoint loads without interpolating its position embedding. With stride-8
# tokens the pyramid is built at scales 2, 1 and 0.5 (strides 4-16) plus the max-pool level (32): the levels keep
# the names p2-p5 of the COCO recipe, whose p6 is dropped. Pyramid and heads
# are slimmed to 64 channels and anchors made small, as the toy calibration found workable (docs/design.md,
# Toy scenes). Dataset: asl_toy_train (400 scenes) -> asl_toy_val (300 scenes).
#   python tools/train_det.py configs/detection/mask_rcnn_vitdet_toy_1000it.py \\
#       --init toy_asl_d2.pth --init-name asl
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from transfer.detection.data import lsj_dataloader
from transfer.detection.pyramid import MaxPoolLevel

from .mask_rcnn_vitdet_b_100ep_coco import model, optimizer, train

IMAGE_SIZE = 64
net = model.backbone.net
net.img_size = IMAGE_SIZE
net.patch_size = 8
net.pretrain_img_size = IMAGE_SIZE  # = the toy pretraining size: pos_embed used as is (8x8 grid)
net.embed_dim, net.depth, net.num_heads = 128, 4, 4
net.window_size = 4  # 4x4-token windows on the 8x8 grid
net.window_block_indexes = [0, 2]  # global attention in blocks 1 and 3 (ViTDet: 1 in 3; here 1 in 2 of 4)
net.drop_path_rate = 0.1
model.backbone.out_channels = 64
model.backbone.square_pad = IMAGE_SIZE
model.backbone.scale_factors = (2.0, 1.0, 0.5)
model.backbone.top_block = L(MaxPoolLevel)(in_feature="p4")  # p5 = max-pooled p4

CHANNELS = 64
model.proposal_generator.head.in_channels = CHANNELS
model.proposal_generator.in_features = ["p2", "p3", "p4", "p5"]
model.proposal_generator.anchor_generator.sizes = [[8], [16], [32], [64]]  # toy objects span 10-45 px
model.proposal_generator.anchor_generator.strides = [4, 8, 16, 32]
# (train, test): a toy scene holds at most 3 objects, so 100 proposals at test time are plenty, and the box head's
# cost at test time grows with their number (docs/toy.md, step 6)
model.proposal_generator.pre_nms_topk = (1000, 200)
model.proposal_generator.post_nms_topk = (500, 100)
model.roi_heads.num_classes = 4  # disc, square, triangle, ring
# The heads' convolutions on every sampled RoI and RoIAlign's backward were most of a CPU step: the box head is the
# FPN recipe's two fc layers instead of ViTDet's convolutions, 32 RoIs per image are sampled (a scene holds at most
# 3 objects) and the mask head has one conv (docs/toy.md, step 9).
model.roi_heads.batch_size_per_image = 32
model.roi_heads.box_head.input_shape = ShapeSpec(channels=CHANNELS, height=7, width=7)
model.roi_heads.box_head.conv_dims = []
model.roi_heads.box_head.fc_dims = [256, 256]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=256)
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=CHANNELS, width=14, height=14)
model.roi_heads.mask_head.conv_dims = [CHANNELS, CHANNELS]  # 1 conv + the upsampling deconv
model.roi_heads.box_predictor.test_topk_per_image = 20  # a toy scene holds at most 3 objects: fewer masks to paste

# ViTDet's LSJ pipeline at 64 px without its scale jitter (flips only): every toy scene, train and val, shows its
# objects at one scale, and the jitter spent a short run on scales the val scenes never show (docs/toy.md, step 9).
# RLE masks need detectron2's bitmask format.
dataloader = lsj_dataloader(train="asl_toy_train", test="asl_toy_val", image_size=IMAGE_SIZE, total_batch_size=4,
                            min_scale=1.0, max_scale=1.0, num_workers=1, mask_format="bitmask",
                            use_fast_impl=False)
dataloader.test.batch_size = 8  # 64 px scenes of one size: batched inference gives the same AP in less time

optimizer.lr = 4e-4  # twice the rate learned no faster (docs/toy.md, step 9)
optimizer.weight_decay = 0.05
optimizer.params.layer_decay = 0.7
optimizer.params.num_layers = 4

# Schedule: 1,000 iterations (10 epochs of the 400 scenes), ViTDet's own step schedule (constant lr, x0.1 at 89 %,
# x0.01 at 96 %) instead of the COCO recipe's half-period cosine: a run this short is far from converged and needs
# the higher average lr (docs/detection.md). detectron2 reads the schedule in fractions of train.max_iter, so a
# shorter run (`make demo`'s, configs/pipeline/toy.py) keeps the warmup and both steps at the same fractions.
MAX_ITER = 1000
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[889, 963], num_updates=MAX_ITER),
    warmup_length=50 / MAX_ITER,  # half an epoch at batch 4
    warmup_method="linear",
    warmup_factor=0.001,
)
train.max_iter = MAX_ITER
train.amp.enabled = False
train.ddp.fp16_compression = False
train.checkpointer = dict(period=100, max_to_keep=2)
train.eval_period = 250  # an AP curve: 250, 500, 750 and the end
train.log_period = 20
train.device = "cpu"
train.seed = 0
