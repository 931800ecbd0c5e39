"""Detection metrics against answers worked out by hand: detectron2's COCOEvaluator, run by the tool's own
evaluation (`do_test`) on a hand-built COCO set, then `flatten_metrics` into metrics.json's keys. Box and mask AP
differ, and AP50 differs from AP, so a swapped key or a wrong scale fails.

The set: two categories with ids 3 and 7 (not contiguous; the model's classes 0 and 1), objects of id 7 only,
two 100x100 images, one 40x40 object in each (COCO area "medium").
Detection A (score 0.9) is exact in box and mask. Detection B (score 0.8) is shifted: its box by 8 px (IoU 32/48
= 0.667: a match at IoU thresholds 0.50-0.65, 4 of 10), its mask by 12 px (IoU 28/52 = 0.538: a match at 0.50
only). Where B does not match, precision is 1 up to recall 0.5 and recall 1 is never reached: COCOeval's 101-point
interpolated AP is 51/101. So AP = (matches + (10 - matches) * 51/101) / 10, AP50 = 100, AP75 = 100 * 51/101.
"""
import json

import numpy as np
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, Instances
from omegaconf import OmegaConf

from asl.data.toy import rle_encode
from transfer.detection.engine import do_test, flatten_metrics

SIDE, SIZE = 100, 40
GT = {1: (10, 10), 2: (20, 20)}  # image id -> (x, y) of its object's top-left corner


def rectangle(x, y):
    mask = np.zeros((SIDE, SIDE), bool)
    mask[y:y + SIZE, x:x + SIZE] = True
    return mask


def detections():
    """(image id, box x, mask x, score): A exact, B's box 8 px and its mask 12 px to the right."""
    (ax, ay), (bx, by) = GT[1], GT[2]
    return [(1, ax, ay, ax, 0.9), (2, bx + 8, by, bx + 12, 0.8)]


class FixedDetector(torch.nn.Module):
    """A 'model' whose outputs are the detections above."""

    def forward(self, inputs):
        outputs = []
        for item in inputs:
            image_id, x, y, mask_x, score = next(d for d in detections() if d[0] == item["image_id"])
            instances = Instances((SIDE, SIDE))
            instances.pred_boxes = Boxes(torch.tensor([[x, y, x + SIZE, y + SIZE]], dtype=torch.float32))
            instances.scores = torch.tensor([score])
            instances.pred_classes = torch.tensor([1])  # contiguous class 1 = category id 7
            instances.pred_masks = torch.from_numpy(rectangle(mask_x, y))[None]
            outputs.append({"instances": instances})
        return outputs


def fixed_inputs():
    return [[{"image_id": i, "height": SIDE, "width": SIDE}] for i in GT]


@pytest.fixture
def coco_set(tmp_path):
    images = [{"id": i, "file_name": f"{i}.png", "height": SIDE, "width": SIDE} for i in GT]
    annotations = [{"id": i, "image_id": i, "category_id": 7, "bbox": [x, y, SIZE, SIZE], "area": SIZE * SIZE,
                    "iscrowd": 0, "segmentation": rle_encode(rectangle(x, y))} for i, (x, y) in GT.items()]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 3, "name": "gadget"}, {"id": 7, "name": "widget"}]}))
    name = "known_answer_coco"
    register_coco_instances(name, {}, str(path), str(tmp_path))
    DatasetCatalog.get(name)  # fills the metadata's category id mapping, as the tool's data preparation does
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def expected_ap(matches: int) -> float:
    return 100 * (matches + (10 - matches) * 51 / 101) / 10


def test_box_and_mask_ap_of_a_hand_built_coco_set(coco_set, tmp_path):
    cfg = OmegaConf.create({"dataloader": {
        "test": L(fixed_inputs)(),
        "evaluator": L(COCOEvaluator)(dataset_name=coco_set, tasks=("bbox", "segm"), distributed=False,
                                      output_dir=str(tmp_path / "eval")),
    }})
    metrics, per_category, notes = flatten_metrics(do_test(cfg, FixedDetector()))
    assert metrics["box_AP"] == pytest.approx(expected_ap(4), abs=1e-3)  # 70.297
    assert metrics["mask_AP"] == pytest.approx(expected_ap(1), abs=1e-3)  # 55.446
    for prefix in ("box", "mask"):
        assert metrics[f"{prefix}_AP50"] == pytest.approx(100.0)
        assert metrics[f"{prefix}_AP75"] == pytest.approx(100 * 51 / 101, abs=1e-3)
        assert metrics[f"{prefix}_APm"] == pytest.approx(metrics[f"{prefix}_AP"])
        assert f"{prefix}_APs" not in metrics and f"{prefix}_APl" not in metrics  # no small or large objects
    assert per_category == {"box": {"widget": pytest.approx(expected_ap(4), abs=1e-3)},
                            "mask": {"widget": pytest.approx(expected_ap(1), abs=1e-3)}}
    assert any("APs, APl, AP-gadget left out" in note for note in notes)  # no ground truth: undefined
