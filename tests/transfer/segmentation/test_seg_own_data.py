"""Segmentation on a user's own label maps given by paths: the toy scenes' label maps in folders of their own with
other class names (and, with --reduce-zero-label, ADE20K's convention), trained a few iterations; bad label maps
are one line naming the file, before anything is built."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from asl.cli import UserError

from .test_train_seg import TINY_CONFIG, run_tool, user_error

CLASSES = "sky,coin,tile,wedge,hoop,kite"  # the toy's background and four shapes renamed, and one never seen


def own_set(toy_root, folder, shift=0):
    """The toy split copied to <folder>/{train,val}_{images,labels}; labels + `shift` (1: 0 becomes 'other')."""
    args = []
    for split, ade in (("train", "training"), ("val", "validation")):
        images, labels = folder / f"{split}_images", folder / f"{split}_labels"
        shutil.copytree(toy_root / "ade" / "images" / ade, images)
        labels.mkdir(parents=True)
        for path in sorted((toy_root / "ade" / "annotations" / ade).iterdir()):
            Image.fromarray((np.asarray(Image.open(path)) + shift).astype(np.uint8)).save(labels / path.name)
        args += [f"--{split}-images", images, f"--{split}-labels", labels]
    return args


@pytest.mark.parametrize("reduce", [False, True], ids=["zero_is_a_class", "reduce_zero_label"])
def test_own_label_maps_train_and_report_iou_per_class_name(toy_root, tmp_path, capsys, reduce):
    extra = ["--reduce-zero-label"] if reduce else []
    classes = CLASSES.split(",")
    run_tool(TINY_CONFIG, *own_set(toy_root, tmp_path / "own", shift=int(reduce)), "--classes", CLASSES, *extra,
             "--work-dir", tmp_path / "run")
    assert f"your dataset: 6 classes ({CLASSES.replace(',', ', ')})" in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["dataset"] == "custom" and "mIoU" in record["metrics"]
    assert record["per_class_IoU"] and set(record["per_class_IoU"]) <= set(classes)
    assert record["per_class_IoU"].get("kite", 0.0) == 0.0  # never in the labels: predicted or not, IoU 0
    (config,) = (tmp_path / "run").glob("*.py")  # the run's resolved config: the heads have the set's classes
    assert config.read_text().count("num_classes=6") == 2


def test_bad_label_maps_are_one_line_errors_naming_the_file(toy_root, tmp_path, capsys):
    args = own_set(toy_root, tmp_path / "own")
    labels = tmp_path / "own" / "val_labels"
    first = sorted(labels.iterdir())[0]
    original = Image.open(first).copy()
    original.resize((original.width // 2, original.height // 2)).save(first)
    message = user_error(capsys, TINY_CONFIG, *args, "--classes", CLASSES, "--work-dir", tmp_path / "a")
    assert str(first) in message and "its image" in message
    beyond = np.asarray(original).copy()
    beyond[0, 0] = 7  # classes 0-5, ignore index 255
    Image.fromarray(beyond).save(first)
    message = user_error(capsys, TINY_CONFIG, *args, "--classes", CLASSES, "--work-dir", tmp_path / "b")
    assert str(first) in message and "holds label 7, beyond the 6 classes" in message
    assert "need --classes" in user_error(capsys, TINY_CONFIG, *args, "--work-dir", tmp_path / "c")
    assert "at least two distinct class names" in user_error(capsys, TINY_CONFIG, *args, "--classes", "a,a",
                                                             "--work-dir", tmp_path / "d")
    Image.fromarray(np.asarray(original)).save(first)  # repaired
    image = sorted((tmp_path / "own" / "val_images").iterdir())[0]
    whole = image.read_bytes()
    image.write_bytes(whole[:len(whole) // 2])  # cut short: the header still opens, the pixels do not decode
    assert Image.open(image).size == original.size
    message = user_error(capsys, TINY_CONFIG, *args, "--classes", CLASSES, "--work-dir", tmp_path / "e")
    assert message.startswith(f"error: cannot read {image} (OSError: image file is truncated")
    image.write_bytes(b"not an image")
    message = user_error(capsys, TINY_CONFIG, *args, "--classes", CLASSES, "--work-dir", tmp_path / "f")
    assert message.startswith(f"error: cannot read {image} (UnidentifiedImageError")
    assert not any((tmp_path / d).exists() for d in "abcdef")  # refused before anything was written


def test_classes_from_a_file_the_ignore_index_and_the_zero_reduction(tmp_path):
    """docs/usage.md: --classes as a file (one name per line); the ignore index (255) is no class and passes the
    check; with --reduce-zero-label label i is class i - 1, so labels 1..K are the K classes and K + 1 is beyond."""
    from transfer.segmentation.data import check_label_maps, read_classes

    (tmp_path / "classes.txt").write_text("sky\ncoin\n\ntile\n")
    assert read_classes(str(tmp_path / "classes.txt")) == ["sky", "coin", "tile"]
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    Image.new("RGB", (4, 2)).save(images / "a.png")
    label = np.array([[0, 1, 2, 255], [2, 1, 0, 255]], dtype=np.uint8)
    Image.fromarray(label).save(labels / "a.png")
    assert check_label_maps(str(images), str(labels), 3, 255, False, ".png") == 1
    Image.fromarray(label + np.uint8(1) * (label < 255)).save(labels / "a.png")  # 1..3 and 255
    assert check_label_maps(str(images), str(labels), 3, 255, True, ".png") == 1
    Image.fromarray(np.where(label == 255, 4, label + 1).astype(np.uint8)).save(labels / "a.png")  # 4: a 4th class
    with pytest.raises(UserError, match=r"holds label 4, beyond the 3 classes \(0 is ignored, 1 is the first class\)"):
        check_label_maps(str(images), str(labels), 3, 255, True, ".png")



def test_the_classes_ignore_index_and_reduction_reach_the_heads_the_loaders_and_the_evaluators(toy_root, tmp_path):
    """docs/usage.md: the heads get the classes (and lose the toy config's class weights); --ignore-index and
    --reduce-zero-label reach the heads' losses, every split's dataset and LoadAnnotations, and the IoU metric (an
    ignore index other than 255 too)."""
    from transfer.segmentation.data import use_own_label_maps
    from transfer.segmentation.engine import load_config

    args = own_set(toy_root, tmp_path / "own", shift=1)
    paths = {a.lstrip("-").replace("-", "_"): str(b) for a, b in zip(args[::2], args[1::2])}
    for ignore, reduce in ((255, True), (200, False)):
        cfg = load_config(str(TINY_CONFIG))
        heads = [cfg.model[h] for h in ("decode_head", "auxiliary_head") if cfg.model.get(h)]
        assert all(len(head.loss_decode.class_weight) == 5 for head in heads)  # the toy's five classes
        use_own_label_maps(cfg, paths, CLASSES.split(","), ignore_index=ignore, reduce_zero_label=reduce)
        assert heads and all((head.num_classes, head.ignore_index) == (6, ignore) for head in heads)
        assert not any("class_weight" in head.loss_decode for head in heads)  # the toy's weights are not theirs
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            dataset = cfg[loader].dataset
            assert (dataset.reduce_zero_label, dataset.ignore_index) == (reduce, ignore)
            assert dataset.metainfo.classes[-1] == "kite"
            assert [s.reduce_zero_label for s in dataset.pipeline if s.type == "LoadAnnotations"] == [reduce]
        assert cfg.val_evaluator.ignore_index == cfg.test_evaluator.ignore_index == ignore
    with pytest.raises(UserError, match="--ignore-index 200 cannot go with it: leave it at 255"):
        use_own_label_maps(load_config(str(TINY_CONFIG)), paths, CLASSES.split(","), ignore_index=200,
                           reduce_zero_label=True)
