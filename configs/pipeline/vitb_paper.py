# The paper's ViT-B/16 chain on real data (one node of 8 GPUs; more nodes: run the stages' own multi-node
# commands from README.md): COCO pretraining (800 epochs), COCO detection, ADE20K segmentation and ImageNet-100
# linear probing / fine-tuning, for ASL, MAE and random initialisation. Needs --data-root with coco/,
# ADEChallengeData2016/ and imagenet/.
import os

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="ViT-B/16, COCO pretraining 800 epochs",
    inits=["asl", "mae", "random"],
    toy=None,
    visualize=dict(images=[]),  # e.g. visualize.images="['/data/coco/val2017/000000000139.jpg']"; empty: skipped
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/vitb_coco_asl_800ep.py",
                               mae=f"{CONFIGS}/pretrain/vitb_coco_mae_800ep.py"),
                  nproc=8),  # 64 x 8 processes, accumulated to the batch of 4096
    detection=dict(config=f"{CONFIGS}/coco_vitb.py", overrides=[], num_gpus=8),
    segmentation=dict(config=f"{CONFIGS}/ade20k_vitb_upernet.py", overrides=[], nproc=8),
    linprobe=dict(config=f"{CONFIGS}/linprobe/in100_vitb.py", nproc=8),
    finetune=dict(config=f"{CONFIGS}/finetune/in100_vitb.py", nproc=8),
)
