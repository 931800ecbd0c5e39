"""docs/design.md, Recipes: values the paper does not give come from the tool a stage is built on (or are ours) and
are marked so; configs and docs never attribute them to the paper. Each value below is one the appendix does not
state: the config that sets it names its real source on the same comment, and no comment there calls it [paper]."""
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (config, the text that sets or states the value, the source its comment must name)
NOT_FROM_THE_PAPER = [
    ("configs/detection/mask_rcnn_vitdet_b_100ep_coco.py", "1024x1024 input", "[ViTDet]"),
    ("configs/detection/mask_rcnn_vitdet_b_100ep_coco.py", "image_size=1024,", "[ViTDet]"),
    ("configs/detection/mask_rcnn_vitdet_b_100ep_coco.py", "layer decay 0.7", "[ViTDet]"),
    ("configs/detection/mask_rcnn_vitdet_l_100ep_coco_vitdet_values.py", "drop_path_rate = 0.4", "[ViTDet]"),
    ("configs/segmentation/upernet_vitb_8xb2_100ep_ade20k.py", "warmup_iters = 1500", "[mmseg]"),
    ("configs/segmentation/upernet_vitb_8xb2_100ep_ade20k.py", "lr=1e-4,", "values [mmseg]"),
    ("configs/segmentation/_base_upernet_mae.py", "lr=1e-4,", "values [mmseg]"),
    ("configs/segmentation/upernet_vitl_8xb2_100ep_ade20k.py", "drop path 0.2", "[ours]"),
    ("configs/finetune/in100_vitl.py", "Drop path 0.1", "[ours:"),
]


def _comment_of(path: str, text: str) -> str:
    """The comment on the first line holding `text` (a header line of a comment block, or a code line's comment)."""
    lines = open(os.path.join(REPO, path)).read().splitlines()
    line = next((line for line in lines if text in line), None)
    assert line is not None, f"{path} no longer holds {text!r}: update this test with the value's new home"
    return line if line.lstrip().startswith("#") else line.partition("#")[2]


@pytest.mark.parametrize("path, text, source", NOT_FROM_THE_PAPER, ids=[f"{p}:{t}" for p, t, _ in NOT_FROM_THE_PAPER])
def test_values_the_paper_does_not_give_name_their_source_and_never_the_paper(path, text, source):
    comment = _comment_of(path, text)
    assert source in comment, f"{path}: {text!r} does not name its source {source}: {comment!r}"
    if text in comment:  # a header line states the value, then its source: the first tag after it is the source
        first_tag = re.search(r"\[[^\]\s:;]+", comment[comment.index(text) + len(text):])
        assert first_tag and first_tag.group(0) == re.search(r"\[[^\]\s:;]+", source).group(0), \
            f"{path}: {text!r} is attributed to {first_tag and first_tag.group(0)}]: {comment!r}"


def test_design_md_marks_the_same_values_as_not_in_the_paper():
    design = open(os.path.join(REPO, "docs", "design.md")).read()
    for stated in ("1024×1024 *[not in the paper]*", "layer-wise lr decay 0.7 *[not in the paper: ViTDet's",
                   "drop path 0.1 *[not in the paper: mmseg's MAE config]*", "uses drop path 0.2 *[not in the paper: "
                   "ours]*", "keeps 0.1 on ViT-L *[not in the paper: ours"):
        assert stated in design, f"docs/design.md no longer marks {stated!r}"
