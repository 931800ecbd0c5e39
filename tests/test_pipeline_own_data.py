"""configs/pipeline/own_data.py end to end at a tiny budget, given paths only: the toy scenes laid out as a user's
own sets (an image folder, a COCO-format set with other class names and ids, label-map folders) -> ASL and MAE
pretraining -> detection, segmentation and linear probing on class folders from ASL, MAE and random weights -> the
results table."""
import json
import os
import shutil

import pytest
from PIL import Image

from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.data.toy import classification_objects
from chain.pipeline import Pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {1: (10, "coin"), 2: (3, "tile"), 3: (42, "wedge"), 4: (7, "hoop")}


def own_paths(toy_root, folder):
    """{paths key: value} of the toy scenes copied to a layout of their own."""
    shutil.copytree(toy_root / "unlabeled", folder / "photos")
    paths = {"unlabeled": str(folder / "photos"), "seg_classes": "sky,coin,tile,wedge,hoop",
             "classification": str(folder / "classes")}
    for split, ade in (("train", "training"), ("val", "validation")):
        data = json.loads((toy_root / "coco" / "annotations" / f"instances_{split}.json").read_text())
        data["categories"] = [{"id": NAMES[c["id"]][0], "name": NAMES[c["id"]][1]} for c in data["categories"]]
        for ann in data["annotations"]:
            ann["category_id"] = NAMES[ann["category_id"]][0]
        (folder / f"{split}.json").write_text(json.dumps(data))
        shutil.copytree(toy_root / "coco" / split, folder / f"det_{split}")
        shutil.copytree(toy_root / "ade" / "images" / ade, folder / f"seg_{split}")
        shutil.copytree(toy_root / "ade" / "annotations" / ade, folder / f"seg_{split}_labels")
        for i, (file_name, box, label) in enumerate(classification_objects(str(toy_root), split)):
            out = folder / "classes" / split / NAMES[label + 1][1] / f"{i}.png"  # class folders: train/<name>/
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.open(toy_root / "coco" / split / file_name).crop(box).save(out)
        paths.update({f"det_{split}": str(folder / f"{split}.json"),
                      f"det_{split}_images": str(folder / f"det_{split}"),
                      f"seg_{split}_images": str(folder / f"seg_{split}"),
                      f"seg_{split}_labels": str(folder / f"seg_{split}_labels")})
    return paths


def tiny(cfg, paths):
    return apply_overrides(cfg, [
        f"paths={paths!r}", "jobs=2",
        "linprobe.overrides=[\"data.dataset='folder'\", 'data.path={classification}', 'data.cache_features=True', "
        "'optim.epochs=1', 'optim.batch_size=8', 'data.num_workers=0', 'runtime.tensorboard=False']",
        "pretrain.overrides=['runtime.tensorboard=False', 'optim.epochs=1', 'optim.batch_size=8', "
        "'data.num_workers=0']",
        "detection.overrides=['train.max_iter=2', 'dataloader.train.num_workers=0', "
        "'dataloader.test.num_workers=0', 'dataloader.train.total_batch_size=2']",
        "segmentation.overrides=['train_cfg.max_iters=2', 'train_cfg.val_interval=2', "
        "'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'train_dataloader.batch_size=2']"])


@pytest.mark.slow  # a minute: the whole chain (pretraining to the table) on own sets given by paths
def test_own_sets_from_pretraining_to_the_table_by_paths(toy_root, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = tiny(load_config(os.path.join(REPO, "configs", "pipeline", "own_data.py")),
               own_paths(toy_root, tmp_path / "mine"))
    Pipeline(cfg, str(tmp_path / "run")).run(["pretrain", "convert", "detection", "segmentation", "linprobe",
                                              "table"])
    for method in ("asl", "mae", "random"):
        det = json.loads((tmp_path / "run" / "detection" / method / "metrics.json").read_text())
        assert det["dataset"] == "custom" and det["init"]["method"] == method
        assert set(det["per_category_AP"]["box"]) <= {name for _, name in NAMES.values()}
        seg = json.loads((tmp_path / "run" / "segmentation" / method / "metrics.json").read_text())
        assert seg["dataset"] == "custom" and set(seg["per_class_IoU"]) <= {"sky", "coin", "tile", "wedge", "hoop"}
    for method in ("asl", "mae", "random"):
        lp = json.loads((tmp_path / "run" / "linprobe" / method / "metrics.json").read_text())
        assert lp["dataset"] == "folder" and lp["epochs"] == 1 and "top1" in lp["metrics"]
    pretrained = json.loads((tmp_path / "run" / "pretrain" / "asl" / "metrics.json").read_text())
    assert json.loads(open(pretrained["config"]).read())["data"]["path"] == str(tmp_path / "mine" / "photos")
    table = json.loads((tmp_path / "run" / "results" / "results.json").read_text())
    assert set(table["rows"]) == {"asl", "mae", "random"} and table["chance"] == {}


def test_a_path_a_stage_needs_is_asked_for_by_name(tmp_path):
    cfg = load_config(os.path.join(REPO, "configs", "pipeline", "own_data.py"))
    with pytest.raises(UserError, match=r"pretrain needs paths.unlabeled: give it on the command line"):
        Pipeline(cfg, str(tmp_path / "run")).run(["pretrain"])


def test_only_the_configs_paths_are_filled(tmp_path):
    cfg = dict(load_config(os.path.join(REPO, "configs", "pipeline", "own_data.py")), paths={"unlabeled": "/u"})
    filled = Pipeline(cfg, str(tmp_path / "run")).fill("probe", ["a=/d/instances_{split}.json", "b={unlabeled}/x",
                                                                  "c={datasets}/imagenet"])
    assert filled == ["a=/d/instances_{split}.json", "b=/u/x", "c={datasets}/imagenet"]  # the tools' own braces
