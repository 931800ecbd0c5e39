"""The detection task as the chain sees it (chain.task): ViTDet Mask R-CNN trained by tools/train_det.py from
detectron2 weights written by the converter."""
from chain.task import Task, regex_seed

TASKS = [Task(
    name="detection", tool="tools.train_det", init="detectron2",
    columns=[("box_AP", "box AP", "box_AP"), ("mask_AP", "mask AP", "mask_AP")],
    seed_key="train.seed", seed_of=regex_seed(r"^train:\n(?:  .*\n)*?  seed: (\d+)"),  # detectron2's YAML
    toy_config="configs/detection/mask_rcnn_vitdet_toy_1000it.py", checks_config=False,
    extra_args=lambda stage: ["--num-gpus", str(stage.get("num_gpus", 1))],
)]
