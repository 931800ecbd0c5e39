"""Detection on a user's own COCO-format set given by paths: the toy scenes laid out as a foreign set (other class
names, non-contiguous category ids, in a folder of their own), with masks and boxes only."""
import json
import re

import pytest
from det_helpers import FAST, TINY, load_tool

NAMES = {1: (10, "coin"), 2: (3, "tile"), 3: (42, "wedge"), 4: (7, "hoop")}  # toy id -> (foreign id, name)


def foreign_set(small_root, folder, masks=True):
    """The toy scenes' annotation files rewritten with foreign category ids and names (and no masks)."""
    folder.mkdir()
    paths = {}
    for split in ("train", "val"):
        data = json.loads((small_root / "toy_scenes" / "coco" / "annotations" / f"instances_{split}.json").read_text())
        data["categories"] = [{"id": NAMES[c["id"]][0], "name": NAMES[c["id"]][1]} for c in data["categories"]][::-1]
        for ann in data["annotations"]:
            ann["category_id"] = NAMES[ann["category_id"]][0]
            if not masks:
                del ann["segmentation"]
        (folder / f"{split}.json").write_text(json.dumps(data))
        paths[split] = [f"--{split}-annotations", str(folder / f"{split}.json"),
                        f"--{split}-images", str(small_root / "toy_scenes" / "coco" / split)]
    return [*paths["train"], *paths["val"]]


@pytest.mark.parametrize("masks", [True, False], ids=["masks", "boxes_only"])
def test_a_foreign_coco_set_trains_and_evaluates_by_paths(small_root, tmp_path, capsys, masks):
    out = tmp_path / "run"
    load_tool("train_det").main([*foreign_set(small_root, tmp_path / "foreign", masks), "--output-dir", str(out),
                                 *TINY, *FAST])
    said = capsys.readouterr().out
    assert "your dataset: 4 classes (tile, hoop, coin, wedge)" in said  # in category-id order
    assert ("boxes and masks" if masks else "boxes only") in said
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "custom" and metrics["iterations"] == 2
    assert "box_AP" in metrics["metrics"] and ("mask_AP" in metrics["metrics"]) == masks
    classes = {name for _, name in NAMES.values()}
    assert metrics["per_category_AP"]["box"] and set(metrics["per_category_AP"]["box"]) <= classes
    assert ("mask" in metrics["per_category_AP"]) == masks
    config = (out / "config.yaml").read_text()
    assert "num_classes: 4" in config and "asl_custom_train" in config


def test_own_data_needs_both_paths_of_a_split(small_root, tmp_path, capsys):
    args = foreign_set(small_root, tmp_path / "foreign")
    with pytest.raises(SystemExit) as stop:
        load_tool("train_det").main([*args[:6], "--output-dir", str(tmp_path / "run"), *TINY, *FAST])
    assert stop.value.code == 2
    assert "--val-annotations is given but --val-images is not" in capsys.readouterr().err


def _break(folder, change):
    path = folder / "train.json"
    data = json.loads(path.read_text())
    change(data, folder)
    path.write_text(json.dumps(data))


def _unreadable(data, folder):
    """A copy of the train images in which the first image is not an image."""
    _copy_images(data, folder)[0].write_bytes(b"not an image")


def _cut_short(data, folder):
    """A copy of the train images in which the first image is cut short: its header still opens."""
    from PIL import Image

    first = _copy_images(data, folder)[0]
    first.write_bytes(first.read_bytes()[:len(first.read_bytes()) // 2])
    assert Image.open(first).size == (data["images"][0]["width"], data["images"][0]["height"])


def _copy_images(data, folder):
    import shutil

    shutil.copytree(data["_images"], folder / "images")
    return [folder / "images" / img["file_name"] for img in data["images"]]


BAD = {
    "missing image": (lambda d, f: d["images"][0].update(file_name="gone.png"), r"image gone.png of .* is not in"),
    "unknown category id": (lambda d, f: d["annotations"][0].update(category_id=5),
                            r"has category_id 5, which is not in 'categories'"),
    "box outside the image": (lambda d, f: d["annotations"][0].update(bbox=[70, 1, 5, 5]),
                              r"has bbox \[70, 1, 5, 5\] outside its 64x64 image"),
    "zero-area box": (lambda d, f: d["annotations"][0].update(bbox=[1, 1, 5, 0]), r"bbox \[1, 1, 5, 0\] of zero area"),
    "empty annotation file": (None, r"train.json is not valid JSON"),
    "image of another size": (lambda d, f: d["images"][0].update(width=65), r"is 64x64, .*train.json says 65x64"),
    "unreadable image": (_unreadable, r"cannot be read \(UnidentifiedImageError"),
    "image cut short": (_cut_short, r"cannot be read \(OSError: image file is truncated"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file_before_training(small_root, tmp_path, capsys, case):
    args = foreign_set(small_root, tmp_path / "foreign")
    change, message = BAD[case]
    folder = tmp_path / "foreign"
    if change is None:
        (folder / "train.json").write_text("")
    elif change in (_unreadable, _cut_short):
        _break(folder, lambda d, f: change({**d, "_images": args[3]}, f))
        args[3] = str(folder / "images")
    else:
        _break(folder, change)
    with pytest.raises(SystemExit) as stop:
        load_tool("train_det").main([*args, "--output-dir", str(tmp_path / "run"), *TINY, *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "run").exists()  # nothing written
