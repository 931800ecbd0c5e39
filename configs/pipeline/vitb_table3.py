# The paper's Table 3: ImageNet-100 linear probing and fine-tuning of MAE ViT-B/16 pretrained on ImageNet-1K for
# 800 and 1600 epochs against ASL pretrained on ImageNet-100 + COCO for 4000 epochs (the paper: LP 80.5 / 85.3 /
# 85.9 %, FT 92.7 / 93.1 / 94.2 %). One node of 8 GPUs per stage. Needs --data-root with imagenet/ and in100_coco/
# (tools/build_in100_coco.py).
import os

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="Table 3: ViT-B/16, ImageNet-100 top-1",
    inits=["mae_in1k_800ep", "mae_in1k_1600ep", "asl_in100coco_4000ep"],
    toy=None,
    visualize=dict(images=[]),
    pretrain=dict(configs=dict(mae_in1k_800ep=f"{CONFIGS}/pretrain/vitb_in1k_mae_800ep.py",
                               mae_in1k_1600ep=f"{CONFIGS}/pretrain/vitb_in1k_mae_1600ep.py",
                               asl_in100coco_4000ep=f"{CONFIGS}/pretrain/vitb_in100coco_asl_4000ep.py"),
                  nproc=8),  # 64 x 8 processes, accumulated to the batch of 4096
    detection=None,
    segmentation=None,
    linprobe=dict(config=f"{CONFIGS}/linprobe/in100_vitb.py", nproc=8),
    finetune=dict(config=f"{CONFIGS}/finetune/in100_vitb.py", nproc=8),
)
