"""The object probes' reader: token coverage of COCO masks (polygons, RLE) worked out by hand, category ids mapped
in id order, crowd and sub-token objects skipped and counted, bad input refused with one line."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from asl.cli import UserError
from asl.data.objects import read_coco_objects
from asl.data.toy import rle_encode
from asl.probe import pool_objects


def rectangle_rle(height, width, top, left, h, w):
    mask = np.zeros((height, width), bool)
    mask[top:top + h, left:left + w] = True
    return rle_encode(mask)


@pytest.fixture
def coco_set(tmp_path):
    """a.png 16x16: a polygon on the top-left token, an RLE on half the top-right token, a crowd region, a 2x2
    speck; b.png 32x16 (wide, squeezed to 16x16): an RLE on its left half = the left column of tokens."""
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(tmp_path / "b.png")
    annotations = [
        dict(id=1, image_id=1, category_id=5, iscrowd=0, segmentation=[[0, 0, 8, 0, 8, 8, 0, 8]]),
        dict(id=2, image_id=1, category_id=2, iscrowd=0, segmentation=rectangle_rle(16, 16, 0, 8, 8, 4)),
        dict(id=3, image_id=1, category_id=2, iscrowd=1, segmentation=rectangle_rle(16, 16, 8, 8, 8, 8)),
        dict(id=4, image_id=1, category_id=5, iscrowd=0, segmentation=rectangle_rle(16, 16, 12, 0, 2, 2)),
        dict(id=5, image_id=2, category_id=2, iscrowd=0, segmentation=rectangle_rle(16, 32, 0, 0, 16, 16)),
    ]
    coco = dict(images=[dict(id=1, file_name="a.png", height=16, width=16),
                        dict(id=2, file_name="b.png", height=16, width=32)],
                annotations=annotations,
                categories=[dict(id=5, name="five"), dict(id=2, name="two")])
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    return tmp_path, coco


def test_token_coverage_labels_and_skips(coco_set):
    root, _ = coco_set
    objects = read_coco_objects(str(root / "instances.json"), str(root), img_size=16, patch_size=8)
    assert objects.classes == ["two", "five"]  # in category-id order, whatever the file's order
    assert objects.labels.tolist() == [1, 0, 0] and objects.owner.tolist() == [0, 0, 1]
    expected = [[1, 0, 0, 0], [0, 0.5, 0, 0], [1, 0, 1, 0]]  # tokens row by row: TL, TR, BL, BR
    assert torch.allclose(objects.weights, torch.tensor(expected))
    assert objects.skipped == {"crowd": 1, "too_small": 1}  # the speck covers 4/64 of a token
    assert objects.images.shape == (2, 3, 16, 16) and objects.images.dtype == torch.float16
    grey = (200 / 255 - 0.485) / 0.229  # ImageNet normalisation of the first channel
    assert objects.images[0, 0].float().mean().item() == pytest.approx(grey, abs=1e-2)


def test_pooled_features_are_coverage_weighted_token_means():
    grid = torch.arange(2 * 2 * 4, dtype=torch.float32).view(2, 2, 2, 2)  # image 1's tokens: 8..11 and 12..15
    weights = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0, 0.5], [1.0, 0, 1, 0]])
    for chunk in (1024, 2):  # two objects at a time: the third in a chunk of its own
        pooled = pool_objects(grid, weights, torch.tensor([0, 0, 1]), chunk=chunk)
        assert pooled.tolist() == [[0, 4], [2, 6], [9, 13]]


@pytest.mark.parametrize("breakage, message", [
    ("missing", r"annotation file .* does not exist"),
    ("category", r"annotation 2 has category id 9, which is not in its categories"),
    ("size", r"b.png is 32x16, its annotation says 16x16"),
    ("empty", r"has no categories or no annotations"),
    ("unreadable", r"cannot read image .*a.png"),
])
def test_bad_input_is_one_line_naming_the_file(coco_set, breakage, message):
    root, coco = coco_set
    if breakage == "category":
        coco["annotations"][1]["category_id"] = 9
    elif breakage == "size":
        coco["images"][1]["width"] = 16
    elif breakage == "empty":
        coco["annotations"] = []
    elif breakage == "unreadable":
        (root / "a.png").write_bytes(b"not a png")
    (root / "instances.json").write_text(json.dumps(coco))
    path = root / ("absent.json" if breakage == "missing" else "instances.json")
    with pytest.raises(UserError, match=message):
        read_coco_objects(str(path), str(root), img_size=16, patch_size=8)
