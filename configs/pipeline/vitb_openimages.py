# The paper's section 8: ASL and MAE ViT-B/16 pretrained on OpenImages v6 for 800 epochs, then ImageNet-100 linear
# probing, COCO detection and ADE20K segmentation, as the paper reports them (ASL 87.6 / 51.7 / 49.7, MAE
# 83.5 / 49.9 / 47.8; no fine-tuning, no random row). One node of 8 GPUs per stage (the multi-node commands of
# every stage: docs/experiments.md). Needs --data-root with openimages/train, coco/, ADEChallengeData2016/ and
# imagenet/.
import os

_base_ = "vitb_paper.py"
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="ViT-B/16, OpenImages pretraining 800 epochs",
    inits=["asl", "mae"],
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/vitb_openimages_asl_800ep.py",
                               mae=f"{CONFIGS}/pretrain/vitb_openimages_mae_800ep.py")),
    finetune=None,
)
