"""Datasets of the detection adapter: registration under a root, the checks that run before training, LSJ."""
import json
import os
import shutil

import pytest
from det_helpers import CONFIGS
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog

from asl.cli import UserError
from asl.data.toy import write_toy_scenes
from transfer.detection import data
from transfer.detection.engine import load_config

VITB = os.path.join(CONFIGS, "coco_vitb.py")
TOY = os.path.join(CONFIGS, "detection", "mask_rcnn_vitdet_toy_1000it.py")


def copy_root(det_root, tmp_path):
    root = tmp_path / "datasets"
    shutil.copytree(os.path.realpath(det_root / "toy_scenes"), root / "toy_scenes")
    return root


def test_toy_splits_register_and_load_through_detectron2(det_root):
    summaries = data.prepare_datasets(load_config(TOY), str(det_root))
    assert summaries["asl_toy_train"]["images"] == 24 and summaries["asl_toy_val"]["images"] == 16
    data.register_datasets(str(det_root))
    dicts = DatasetCatalog.get("asl_toy_val")
    assert len(dicts) == 16 and dicts[0]["annotations"][0]["segmentation"]["size"] == [128, 128]
    meta = MetadataCatalog.get("asl_toy_val")
    assert meta.thing_classes == ["disc", "square", "triangle", "ring"]
    assert meta.json_file.startswith(str(det_root)) and meta.evaluator_type == "coco"


def test_missing_coco_is_an_error_that_points_at_the_toy_config(tmp_path, monkeypatch):
    cfg = load_config(VITB)
    with pytest.raises(UserError, match=r"(?s)dataset root .*nowhere does not exist.*mask_rcnn_vitdet_toy_1000it.py"):
        data.prepare_datasets(cfg, str(tmp_path / "nowhere"))
    monkeypatch.setenv("ASL_DATASETS", str(tmp_path))  # exists, but holds no COCO
    with pytest.raises(UserError, match=r"instances_train2017.json does not exist.*coco/train2017"):
        data.prepare_datasets(cfg)
    with pytest.raises(UserError, match="instances_val2017.json does not exist"):
        data.prepare_datasets(cfg, eval_only=True)


def test_toy_scenes_are_generated_when_absent(tmp_path, monkeypatch):
    made = []

    def small(root, **kwargs):  # the real default (2,300 scenes) takes ~15 s; the call is what matters here
        made.append(root)
        return write_toy_scenes(root, num_unlabeled=0, num_train=4, num_val=2)

    monkeypatch.setattr(data, "ensure_toy_scenes", small)
    monkeypatch.delenv("ASL_DATASETS", raising=False)
    monkeypatch.chdir(tmp_path)  # default root ./datasets, absent
    summaries = data.prepare_datasets(load_config(TOY))
    assert made == [str(tmp_path / "datasets" / "toy_scenes")]
    assert summaries["asl_toy_val"]["images"] == 2


def _edit(path, change):
    with open(path) as f:
        coco = json.load(f)
    change(coco)
    with open(path, "w") as f:
        json.dump(coco, f)


MALFORMED = {
    "truncated": (None, r"is not valid JSON \(.* at line 1, column"),
    "no annotations": (lambda c: c.pop("annotations"), r"'annotations' is missing"),
    "unknown category": (lambda c: c["annotations"][3].update(category_id=9),
                         r"annotations\[3\] \(id 4\) has category_id 9"),
    "unknown image": (lambda c: c["annotations"][0].update(image_id=999), r"refers to image id 999"),
    "bad box": (lambda c: c["annotations"][1].update(bbox=[1, 2, 3]), r"has bbox \[1, 2, 3\]"),
    "RLE too short": (lambda c: c["annotations"][2]["segmentation"]["counts"].pop(),
                      r"RLE counts summing to \d+, expected 16384"),
    "RLE of another size": (lambda c: c["annotations"][2]["segmentation"].update(size=[64, 64]),
                            r"RLE of size \[64, 64\] but its image is 128x128"),
    "image file missing": (lambda c: c["images"][0].update(file_name="gone.png"), r"gone.png .* is not in"),
    "box outside the image": (lambda c: c["annotations"][1].update(bbox=[130, 5, 40, 4]),
                              r"has bbox \[130, 5, 40, 4\] outside its 128x128 image"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_annotation_file_is_a_clear_error(case, det_root, tmp_path):
    root = copy_root(det_root, tmp_path)
    path = root / "toy_scenes" / "coco" / "annotations" / "instances_train.json"
    change, message = MALFORMED[case]
    if change is None:
        path.write_text(path.read_text()[:5000])
    else:
        _edit(path, change)
    with pytest.raises(UserError, match=message):
        data.prepare_datasets(load_config(TOY), str(root))


def test_lsj_loader_is_vitdets_and_builds_lazily():
    loader = data.lsj_dataloader("asl_coco_2017_train", "asl_coco_2017_val", image_size=1024, total_batch_size=64)
    flip, resize, crop = instantiate(loader.train.mapper.augmentations)
    assert flip.horizontal and (resize.min_scale, resize.max_scale) == (0.1, 2.0)
    assert (resize.target_height, resize.target_width) == (1024, 1024)
    assert tuple(crop.crop_size) == (1024, 1024) and crop.pad is False
    assert loader.train.mapper.recompute_boxes and loader.train.mapper.use_instance_mask
    assert loader.train.total_batch_size == 64 and loader.train.dataset.names == "asl_coco_2017_train"
    test_aug = instantiate(loader.test.mapper.augmentations)[0]
    assert test_aug.short_edge_length == (1024, 1024) and test_aug.max_size == 1024
    assert loader.evaluator.dataset_name == "asl_coco_2017_val"


def test_boxes_of_zero_area_are_counted_not_refused(det_root, tmp_path):
    """COCO train2017 itself holds two boxes of height 0: a real set must still train."""
    root = copy_root(det_root, tmp_path)
    path = root / "toy_scenes" / "coco" / "annotations" / "instances_train.json"
    _edit(path, lambda c: c["annotations"][1].update(bbox=[5, 5, 3, 0]))
    summaries = data.prepare_datasets(load_config(TOY), str(root))
    assert summaries["asl_toy_train"]["zero_area_boxes"] == 1 and summaries["asl_toy_val"]["zero_area_boxes"] == 0
