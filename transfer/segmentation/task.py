"""The segmentation task as the chain sees it (chain.task): UperNet trained by tools/train_seg.py from mmseg
weights written by the converter."""
from chain.task import Task, regex_seed

TASKS = [Task(
    name="segmentation", tool="tools.train_seg", init="mmseg", columns=[("mIoU", "mIoU", "mIoU")],
    seed_key="randomness.seed", seed_of=regex_seed(r"^randomness = dict\(.*?\bseed=(\d+)"),  # mmengine's config
    toy_config="configs/segmentation/upernet_toy_1xb8_toyscenes.py", checks_config=False,
)]
