import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from asl.cli import UserError
from asl.data import toy
from asl.data.objects import read_coco_objects
from asl.data.toy import (
    CLASSES,
    IGNORE,
    SCENE_KEYS,
    chance_levels,
    classification_objects,
    ensure_toy_scenes,
    make_scene,
    mask_bbox,
    rle_encode,
    write_toy_scenes,
)


def _tree_digest(root):
    digest = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_generator_is_deterministic_to_the_byte(tmp_path):
    write_toy_scenes(str(tmp_path / "a"), num_unlabeled=6, num_train=5, num_val=4, size=64, seed=3)
    write_toy_scenes(str(tmp_path / "b"), num_unlabeled=6, num_train=5, num_val=4, size=64, seed=3)
    write_toy_scenes(str(tmp_path / "c"), num_unlabeled=6, num_train=5, num_val=4, size=64, seed=4)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_scenes_written_by_several_processes_are_the_same_to_the_byte(tmp_path, monkeypatch):
    """The pipeline shares a set's scenes between its cores in chunks: the files, the annotations' ids across chunk
    boundaries included, must be those of one process (chunks of 2 here, so every split crosses several)."""
    monkeypatch.setattr(toy, "SCENES_PER_CHUNK", 2)
    small = dict(num_unlabeled=5, num_train=7, num_val=3, size=32, seed=2)
    write_toy_scenes(str(tmp_path / "one"), **small)
    progress = []
    write_toy_scenes(str(tmp_path / "two"), progress.append, workers=2, **small)
    assert _tree_digest(tmp_path / "one") == _tree_digest(tmp_path / "two")
    assert progress == [2, 2, 1, 2, 2, 2, 1, 2, 1]
    coco = json.loads((tmp_path / "two" / "coco" / "annotations" / "instances_train.json").read_text())
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert len(coco["annotations"]) > 7  # scenes with several shapes: ids run past the scenes' count


@pytest.mark.parametrize("scene, most, size", [({}, 3, 64), (dict(size=128, radius=(0.06, 0.2), max_objects=6,
                                                                         backgrounds="all", rotate=True), 6, 128)])
def test_scene_contents_are_varied(scene, most, size):
    """The defaults (1-3 upright shapes, 64 px) and the previous toy's settings (1-6 rotated, 128 px)."""
    scenes = [make_scene(0, "train", i, **scene) for i in range(60)]
    counts = [len(s.labels) for s in scenes]
    assert min(counts) >= 1 and max(counts) <= most and len(set(counts)) >= most - 2
    assert set(label for s in scenes for label in s.labels) == set(range(len(CLASSES)))
    assert all(s.image.shape == (size, size, 3) and s.image.dtype == np.uint8 for s in scenes)
    # occlusion happens, and never hides more than the generator allows
    fractions = [m.sum() / area for s in scenes for m, area in zip(s.masks, s.drawn_areas)]
    assert min(fractions) >= 0.4 and sum(f < 1 for f in fractions) >= 5


def test_rle_round_trips_through_pycocotools():
    mask = np.zeros((7, 5), bool)
    mask[0, 0] = mask[2:5, 1:4] = mask[6, 4] = True
    rle = mask_util.frPyObjects(rle_encode(mask), 7, 5)
    assert np.array_equal(mask_util.decode(rle).astype(bool), mask)


def test_coco_masks_boxes_and_label_maps_agree_with_pixels(toy_root):
    meta = json.loads((toy_root / "meta.json").read_text())
    coco = COCO(str(toy_root / "coco" / "annotations" / "instances_train.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    for img in coco.loadImgs(coco.getImgIds()):
        index = int(img["file_name"][:-4])
        scene = make_scene(0, "train", index, **{k: meta[k] for k in SCENE_KEYS})
        label_map = np.array(Image.open(toy_root / "ade" / "annotations" / "training" / img["file_name"]))
        assert set(np.unique(label_map)) <= set(range(len(CLASSES) + 1))
        assert np.array_equal(np.array(Image.open(toy_root / "coco" / "train" / img["file_name"])), scene.image)
        rebuilt = np.zeros_like(label_map)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert len(anns) == len(scene.masks)
        for ann, drawn in zip(anns, scene.masks):
            mask = coco.annToMask(ann).astype(bool)
            assert np.array_equal(mask, drawn)
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["area"] == mask.sum()
            assert not (rebuilt[mask] > 0).any(), "visible instance masks must not overlap"
            rebuilt[mask] = ann["category_id"]
        assert np.array_equal(rebuilt, label_map)
    assert IGNORE not in np.unique(label_map)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ground_truth_as_detections_scores_ap_100(toy_root, iou_type):
    gt = COCO(str(toy_root / "coco" / "annotations" / "instances_val.json"))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
             "bbox": a["bbox"], "segmentation": mask_util.frPyObjects(a["segmentation"], 128, 128)}
            for a in gt.loadAnns(gt.getAnnIds())]
    for d in dets:
        d["segmentation"]["counts"] = d["segmentation"]["counts"].decode()
    evaluator = COCOeval(gt, gt.loadRes(dets), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_meta_documents_label_convention(toy_root):
    meta = json.loads((toy_root / "meta.json").read_text())
    assert meta["semantic_labels"]["0"] == "background" and meta["semantic_labels"]["255"].startswith("ignore")
    assert len(os.listdir(toy_root / "unlabeled")) == 24


def test_an_existing_set_is_never_regenerated_behind_the_users_back(tmp_path, capsys):
    small = dict(num_unlabeled=3, num_train=2, num_val=4, size=32)
    write_toy_scenes(tmp_path, **small)
    before = (tmp_path / "coco" / "val" / "000003.png").stat().st_mtime_ns
    meta = ensure_toy_scenes(tmp_path, **dict(small, num_val=2))  # a tool with other defaults: uses the set
    assert meta["num_val"] == 4 and "num_val=4 (asked: 2)" in capsys.readouterr().out
    assert (tmp_path / "coco" / "val" / "000003.png").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="generated with num_val=4"):
        ensure_toy_scenes(tmp_path, require_match=True, **dict(small, num_val=2))  # the pipeline
    assert ensure_toy_scenes(tmp_path, require_match=True, **small)["num_val"] == 4


def test_a_set_finished_by_another_process_meanwhile_is_used_and_never_rewritten(tmp_path, monkeypatch):
    """Two runs starting together (parallel steps) both find no set; the one finishing second must neither rewrite
    the set under the first one's readers nor leave its own copy behind."""
    root, small = tmp_path / "toy_scenes", dict(num_unlabeled=3, num_train=2, num_val=2, size=32)
    real_write = toy.write_toy_scenes

    def other_process_finishes_first(path, **kwargs):
        if not root.exists():
            real_write(str(root), **small)
            times["before"] = (root / "unlabeled" / "000000.png").stat().st_mtime_ns
        return real_write(path, **kwargs)

    times = {}
    monkeypatch.setattr(toy, "write_toy_scenes", other_process_finishes_first)
    meta = ensure_toy_scenes(str(root), **small)
    assert meta == json.loads((root / "meta.json").read_text())
    assert (root / "unlabeled" / "000000.png").stat().st_mtime_ns == times["before"]
    assert sorted(os.listdir(tmp_path)) == ["toy_scenes"]  # no partial copy left


def test_an_interrupted_generation_is_replaced_and_foreign_files_are_refused(tmp_path):
    root = tmp_path / "toy_scenes"
    (root / "unlabeled").mkdir(parents=True)
    (root / "unlabeled" / "000000.png").write_bytes(b"cut short")
    killed = tmp_path / f"toy_scenes.partial-{2 ** 22 + 1}"  # a pid above Linux's maximum: no such process
    (killed / "unlabeled").mkdir(parents=True)
    running = tmp_path / f"toy_scenes.partial-{os.getppid()}"  # another process still generating: left alone
    running.mkdir()
    meta = ensure_toy_scenes(str(root), num_unlabeled=2, num_train=2, num_val=1, size=32)
    assert meta["num_unlabeled"] == 2 and len(os.listdir(root / "unlabeled")) == 2
    Image.open(root / "unlabeled" / "000000.png").verify()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="holds notes.txt but no toy scenes"):
        ensure_toy_scenes(str(other), num_unlabeled=2, num_train=2, num_val=1, size=32)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == sorted(["mine", running.name, "toy_scenes"])  # the killed one's copy is gone


def test_regenerating_a_smaller_set_removes_the_scenes_it_no_longer_has(tmp_path):
    write_toy_scenes(tmp_path, num_unlabeled=4, num_train=2, num_val=4, size=32)
    (tmp_path / "unlabeled" / "notes.txt").write_text("kept")
    write_toy_scenes(tmp_path, num_unlabeled=2, num_train=2, num_val=1, size=32)
    assert sorted(os.listdir(tmp_path / "unlabeled")) == ["000000.png", "000001.png", "notes.txt"]
    for sub in ("coco/val", "ade/images/validation", "ade/annotations/validation"):
        assert os.listdir(tmp_path / sub) == ["000000.png"], sub


def test_classification_objects_are_square_crops_around_every_dominant_object(toy_root):
    """A sample per object that shows at least twice the pixels of any other object in its crop (masks decoded
    by pycocotools), in annotation order; the others are left out as ambiguous."""
    coco = json.loads((toy_root / "coco" / "annotations" / "instances_val.json").read_text())
    samples = classification_objects(str(toy_root), "val")
    names = {img["id"]: img["file_name"] for img in coco["images"]}
    masks = {}
    for ann in coco["annotations"]:
        rle = mask_util.frPyObjects(ann["segmentation"], 128, 128)
        masks[ann["id"]] = mask_util.decode(rle).astype(bool)
    expected = []
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        side = min(max(1.5 * max(w, h), 24), 128)
        left_f, top_f = (min(max(c + d / 2 - side / 2, 0), 128 - side) for c, d in ((x, w), (y, h)))
        left, top, right, bottom = (int(round(v)) for v in (left_f, top_f, left_f + side, top_f + side))
        crop = (slice(top, bottom), slice(left, right))
        others = [masks[o["id"]][crop].sum() for o in coco["annotations"]
                  if o["image_id"] == ann["image_id"] and o["id"] != ann["id"]]
        if masks[ann["id"]][crop].sum() >= 2 * max(others, default=0):
            expected.append((names[ann["image_id"]], (left, top, right, bottom), ann["category_id"] - 1))
            assert left <= x and top <= y and x + w <= right and y + h <= bottom  # the whole object is in view
    assert samples == expected and 0 < len(samples) < len(coco["annotations"])


def test_classification_crop_is_the_object_centred_when_it_fits(tmp_path):
    """A 20 px object in the middle gets the 30 px square around it; a small one at the corner gets the
    24 px minimum, shifted inside the image; a small one beside a large one is not a sample (ambiguous)."""
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    shapes = np.zeros((4, 128, 128), bool)
    shapes[0, 60:70, 50:70] = True
    shapes[1, 120:128, 0:8] = True
    shapes[2, 10:20, 100:110] = True  # 100 px beside ...
    shapes[3, 0:40, 60:100] = True  # ... a large one: its crop shows 100 of its own and 168 of the other
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 128, "height": 128}],
            "annotations": [{"id": i + 1, "image_id": 1, "bbox": mask_bbox(m), "category_id": c,
                             "segmentation": rle_encode(m)} for i, (m, c) in enumerate(zip(shapes, (2, 4, 1, 3)))]}
    (tmp_path / "coco" / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    assert classification_objects(str(tmp_path), "train") == [("a.png", (45, 50, 75, 80), 1),
                                                              ("a.png", (0, 104, 24, 128), 3),
                                                              ("a.png", (50, 0, 110, 60), 2)]


def test_chance_levels_are_the_scores_of_trivial_predictors(toy_root):
    """Majority class over the val objects; mIoU of background everywhere as mmseg's own IoUMetric scores it."""
    import torch
    from mmseg.evaluation.metrics import IoUMetric

    chance = chance_levels(str(toy_root))
    labels = [label for _, _, label in classification_objects(str(toy_root), "val")]
    assert chance["top1"] == pytest.approx(100 * max(map(labels.count, range(len(CLASSES)))) / len(labels))
    objects = read_coco_objects(os.path.join(toy_root, "coco", "annotations", "instances_val.json"),
                                os.path.join(toy_root, "coco", "val"), img_size=64, patch_size=8)
    assert objects.skipped == {"crowd": 0, "too_small": 0}  # the object probe sees every instance
    probed = objects.labels.tolist()
    assert chance["objects_top1"] == pytest.approx(100 * max(map(probed.count, range(len(CLASSES)))) / len(probed))
    folder = os.path.join(toy_root, "ade", "annotations", "validation")
    areas = []
    for name in sorted(os.listdir(folder)):
        gt = torch.from_numpy(np.array(Image.open(os.path.join(folder, name)))).long()
        areas.append(IoUMetric.intersect_and_union(torch.zeros_like(gt), gt, len(CLASSES) + 1, 255))
    totals = [sum(a[i] for a in areas) for i in range(4)]
    iou = IoUMetric.total_area_to_metrics(*totals, ["mIoU"])["IoU"]
    assert chance["mIoU"] == pytest.approx(100 * np.nanmean(iou))
    assert chance["box_AP"] == chance["mask_AP"] == 0.0


def test_every_toolkit_loop_generates_the_toy_scenes_where_they_are_absent(tmp_path, monkeypatch):
    """Pretraining, classification (linear probing, fine-tuning) and the probes, run with no dataset: each makes
    the toy scenes under its dataset root on first use (and uses them)."""
    from asl.config import load_config
    from asl.data.classification import build_classification_data
    from asl.engine.pretrain import build_dataset
    from asl.engine.probing import ProbeData

    small = dict(num_unlabeled=5, num_train=6, num_val=6, size=32)
    for name in ("pretrain", "classification", "probe"):
        monkeypatch.setenv("ASL_DATASETS", str(tmp_path / name))
        if name == "pretrain":
            images, _ = build_dataset(dict(dataset="folder", path=None, transform="mae", toy=small), 32)
            assert len(images) == 5
        elif name == "classification":
            train, val, classes, _ = build_classification_data(dict(dataset="toy", path=None, toy=small), None, None,
                                                               str(tmp_path / name))
            assert len(train) > 0 and len(val) > 0 and classes == list(CLASSES)
        else:
            pcfg = dict(load_config("configs/probe/toy.py")["probe"], toy=small)
            assert len(ProbeData(pcfg, img_size=32, patch_size=8).dense_val[0]) == 6  # the 6 val scenes
        folder = "toy_probe_scenes" if name == "probe" else "toy_scenes"  # the probes' own labeled set
        assert os.listdir(tmp_path / name) == [folder]
        assert json.loads((tmp_path / name / folder / "meta.json").read_text())["num_unlabeled"] == 5
