# The paper's Table 5: MAE ViT-B/16 pretrained on ImageNet-1K for 200 epochs without and with one global
# augmentation of contrastive learning (colour jitter, grayscale, Gaussian blur, solarize), each then linearly
# probed on ImageNet-1K (the paper: 58.8 / 57.6 / 57.4 / 58.2 / 55.8 %). Linear probing only; rows are named by
# the pretraining transform (data.transform). One node of 8 GPUs per stage. Needs --data-root with imagenet/.
import os

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ROWS = {"mae": "vitb_in1k_mae_200ep.py", "mae+colorjitter": "vitb_in1k_mae_200ep_colorjitter.py",
        "mae+grayscale": "vitb_in1k_mae_200ep_grayscale.py", "mae+gaussianblur": "vitb_in1k_mae_200ep_gaussianblur.py",
        "mae+solarize": "vitb_in1k_mae_200ep_solarize.py"}

cfg = dict(
    title="Table 5: global augmentations on MAE, ViT-B/16, ImageNet-1K 200 epochs, linear probing",
    inits=list(ROWS),
    toy=None,
    visualize=dict(images=[]),
    pretrain=dict(configs={name: f"{CONFIGS}/pretrain/{file}" for name, file in ROWS.items()},
                  nproc=8),  # 64 x 8 processes, accumulated to the batch of 4096
    detection=None,
    segmentation=None,
    linprobe=dict(config=f"{CONFIGS}/linprobe/in1k_vitb.py", nproc=8),
    finetune=None,
)
