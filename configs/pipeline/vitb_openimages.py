# The paper's section 8: ASL and MAE ViT-B/16 pretrained on OpenImages v6 for 800 epochs, then ImageNet-100 linear
# probing, COCO detection and ADE20K segmentation, as the paper reports them (ASL 87.6 / 51.7 / 49.7, MAE
# 83.5 / 49.9 / 47.8; no fine-tuning, no random row). One node of 8 GPUs per stage (the multi-node commands of
# every stage: docs/experiments.md). Needs --data-root with openimages/train, coco/, ADEChallengeData2016/ and
# imagenet/.
import os

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="ViT-B/16, OpenImages pretraining 800 epochs",
    inits=["asl", "mae"],
    toy=None,
    visualize=dict(images=[]),
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/vitb_openimages_asl_800ep.py",
                               mae=f"{CONFIGS}/pretrain/vitb_openimages_mae_800ep.py"),
                  nproc=8),  # 64 x 8 processes, accumulated to the batch of 4096
    detection=dict(config=f"{CONFIGS}/coco_vitb.py", overrides=[], num_gpus=8),
    segmentation=dict(config=f"{CONFIGS}/ade20k_vitb_upernet.py", overrides=[], nproc=8),
    linprobe=dict(config=f"{CONFIGS}/linprobe/in100_vitb.py", nproc=8),
    finetune=None,
)
