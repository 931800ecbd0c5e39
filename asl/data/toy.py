"""Deterministic toy scenes: the embedded default dataset (docs/design.md, Toy scenes).

Each scene is an RGB image with 1-6 objects of four shape classes on a textured, gradient or noise background.
Objects are painted in order, so later objects occlude earlier ones; every instance mask is the *visible* part
of its object, taken from the same boolean masks used for painting, so masks, boxes and label maps agree with the
pixels exactly. A scene depends only on (seed, split, index), never on the order of generation.

Label convention of the semantic (ADE20K-style) split: 0 = background, 1..4 = `CLASSES` in order, 255 = ignore
(reserved for the training pipelines; the generator never writes it). Unlike ADE20K, background is a real class,
so the toy segmentation configs use `reduce_zero_label=False`.
"""
import glob
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from ..cli import UserError

CLASSES = ("disc", "square", "triangle", "ring")
BACKGROUND, IGNORE = 0, 255
SPLIT_IDS = {"unlabeled": 0, "train": 1, "val": 2}
MIN_VISIBLE_FRACTION = 0.4  # an object hidden more than this is removed from the scene before painting
MIN_VISIBLE_PIXELS = 12


# The one place of the toy set's defaults: the configs' `toy=dict(TOY_SCENES)`, tools/make_toy_data.py and the
# generator itself read them here.
TOY_SCENES = dict(num_unlabeled=2000, num_train=400, num_val=300, size=64, seed=0, radius=[0.15, 0.35],
                  max_objects=3, backgrounds="smooth", rotate=False)
# The frozen-feature probes' labeled scenes (configs/probe/toy.py), in a folder of their own beside TOY_SCENES':
# the same generator with many more labeled scenes and no unlabeled ones. A probe fits a linear head or nothing,
# so labels cost it seconds, and with 400 / 300 scenes its measures were label-starved and noisy; the transfers
# that train the encoder keep TOY_SCENES' 400 / 300 (docs/toy.md, step 5). The first 400 train and 300 val scenes
# are TOY_SCENES' (a scene depends on its split and index only).
PROBE_SCENES = dict(TOY_SCENES, num_unlabeled=0, num_train=6400, num_val=1200)
PROBE_FOLDER = "toy_probe_scenes"
# what make_scene takes besides (seed, split, index)
SCENE_KEYS = ("size", "radius", "max_objects", "backgrounds", "rotate")


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    masks: list  # visible boolean masks (H, W), one per instance, in painting order
    labels: list  # class index 0..3 into CLASSES, one per instance
    drawn_areas: list  # pixel area of each whole shape before occlusion

    def semantic_map(self) -> np.ndarray:
        """Label map: 0 background, 1 + class index where an instance is visible."""
        seg = np.full(self.image.shape[:2], BACKGROUND, np.uint8)
        for mask, label in zip(self.masks, self.labels):
            seg[mask] = label + 1
        return seg


def _shape_mask(kind, yy, xx, cy, cx, radius, angle):
    dy, dx = yy - cy, xx - cx
    if kind == "disc":
        return dy * dy + dx * dx <= radius * radius
    if kind == "ring":
        d2 = dy * dy + dx * dx
        return (d2 <= radius * radius) & (d2 >= (0.55 * radius) ** 2)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # rotated frame
    if kind == "square":
        half = radius * 0.8
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # triangle: intersection of three half-planes of an equilateral triangle with circumradius `radius`
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        a = angle + np.pi / 2 + 2 * np.pi * k / 3
        inside &= (np.cos(a) * dx + np.sin(a) * dy) <= radius * 0.5
    return inside


BACKGROUNDS = {"all": 3, "smooth": 2}  # kinds drawn from: gradient, smooth noise (, stripes or checkerboard)


def _background(rng, size, backgrounds="all"):
    kind = rng.integers(BACKGROUNDS[backgrounds])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base, other = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # linear gradient in a random direction
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    elif kind == 1:  # smooth noise: low-resolution noise upsampled
        cells = int(rng.integers(3, 9))
        low = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
        t = np.asarray(Image.fromarray(low).resize((size, size), Image.BILINEAR))
    else:  # texture: oriented stripes or checkerboard
        a, freq = rng.uniform(0, np.pi), rng.uniform(4, 16)
        u = np.cos(a) * xx + np.sin(a) * yy
        if rng.integers(2):
            t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * u)
        else:
            v = -np.sin(a) * xx + np.cos(a) * yy
            t = ((np.floor(freq * u) + np.floor(freq * v)) % 2).astype(np.float32)
    img = (base + t[..., None] * (other - base)).astype(np.float32)
    return img + 6 * rng.standard_normal(img.shape, dtype=np.float32)


def make_scene(seed: int, split: str, index: int, size: int = TOY_SCENES["size"], radius=TOY_SCENES["radius"],
               max_objects: int = TOY_SCENES["max_objects"], backgrounds: str = TOY_SCENES["backgrounds"],
               rotate: bool = TOY_SCENES["rotate"]) -> Scene:
    """Generate one scene of 1..max_objects shapes whose circumradius is drawn from `radius` (fractions of the
    side), rotated at random or (rotate=False) upright: squares axis-aligned, triangles with a horizontal base;
    deterministic in the arguments."""
    if backgrounds not in BACKGROUNDS:
        raise UserError(f"toy backgrounds must be one of {', '.join(BACKGROUNDS)}, got {backgrounds!r}")
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    img = _background(rng, size, backgrounds)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(CLASSES)))
        r = rng.uniform(*radius) * size
        cy, cx = rng.uniform(r * 0.5, size - r * 0.5, 2)
        angle = rng.uniform(0, 2 * np.pi)  # drawn either way: the scene's other draws do not depend on `rotate`
        full = _shape_mask(CLASSES[label], yy, xx, cy, cx, r, angle if rotate else 0.0)
        colour = rng.uniform(0, 255, 3)
        objects.append((full, label, colour))
    # Drop objects that would end up mostly hidden (they would be unlearnable slivers), most hidden first.
    while True:
        visible = _visible_masks([o[0] for o in objects])
        fractions = [v.sum() / max(o[0].sum(), 1) for v, o in zip(visible, objects)]
        bad = [i for i, (f, v) in enumerate(zip(fractions, visible))
               if f < MIN_VISIBLE_FRACTION or v.sum() < MIN_VISIBLE_PIXELS]
        if not bad or len(objects) == 1:
            break
        objects.pop(min(bad, key=lambda i: fractions[i]))
    for full, _, colour in objects:
        img[full] = colour + rng.normal(0, 4, (int(full.sum()), 3))
    image = np.clip(img, 0, 255).astype(np.uint8)
    return Scene(image, visible, [o[1] for o in objects], [int(o[0].sum()) for o in objects])


def _visible_masks(full_masks):
    visible, covered = [], np.zeros_like(full_masks[0])
    for full in reversed(full_masks):
        visible.append(full & ~covered)
        covered |= full
    return visible[::-1]


def rle_encode(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major run lengths, starting with a run of zeros)."""
    flat = np.asfortranarray(mask).ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": list(mask.shape)}


def rle_decode(rle: dict) -> np.ndarray:
    """The boolean mask of a COCO uncompressed RLE (the inverse of `rle_encode`)."""
    height, width = rle["size"]
    flat = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).astype(bool)
    return flat.reshape((height, width), order="F")


def mask_bbox(mask: np.ndarray) -> list:
    """COCO [x, y, w, h] of the mask's pixel extent (pycocotools' toBbox convention)."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def coco_categories():
    return [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]


def _save_png(array, path):
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _remove_stale(folder: str, count: int):
    """Delete the scenes numbered `count` and above that an earlier, larger generation left in `folder`."""
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if ext == ".png" and len(stem) == 6 and stem.isdigit() and int(stem) >= count:
            os.remove(os.path.join(folder, name))


def _write_unlabeled(root: str, seed: int, scene: dict, start: int, stop: int):
    """Unlabeled scenes start..stop-1 as PNGs."""
    for i in range(start, stop):
        _save_png(make_scene(seed, "unlabeled", i, **scene).image, os.path.join(root, "unlabeled", f"{i:06d}.png"))


def _write_labeled(root: str, split: str, ade_split: str, size: int, seed: int, scene: dict, start: int,
                   stop: int) -> tuple:
    """Labeled scenes start..stop-1 of `split` as PNGs (image twice, semantic map); returns their COCO images and
    annotations, the annotations not yet numbered (ids follow the scenes' order across all chunks)."""
    images, annotations = [], []
    for i in range(start, stop):
        labeled = make_scene(seed, split, i, **scene)
        name = f"{i:06d}.png"
        _save_png(labeled.image, os.path.join(root, "coco", split, name))
        _save_png(labeled.image, os.path.join(root, "ade", "images", ade_split, name))
        _save_png(labeled.semantic_map(), os.path.join(root, "ade", "annotations", ade_split, name))
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
        for mask, label in zip(labeled.masks, labeled.labels):
            annotations.append({"image_id": i + 1, "category_id": label + 1, "bbox": mask_bbox(mask),
                                "area": int(mask.sum()), "iscrowd": 0, "segmentation": rle_encode(mask)})
    return images, annotations


SCENES_PER_CHUNK = 200  # the unit of work a writing process takes, and of progress


def _chunked(pool, write, count: int, progress=None) -> list:
    """`write(start, stop)` over scenes 0..count-1 in chunks, in `pool`'s processes (None: here), results in order;
    `progress(n)` after each chunk."""
    bounds = [(start, min(start + SCENES_PER_CHUNK, count)) for start in range(0, count, SCENES_PER_CHUNK)]
    if not bounds:
        return []
    results = []
    for (start, stop), result in zip(bounds, (pool.map if pool else map)(write, *zip(*bounds))):
        results.append(result)
        if progress:
            progress(stop - start)
    return results


def write_toy_scenes(root: str, progress=None, workers: int = 1, **kwargs) -> dict:
    """Write the toy dataset under `root`, generated with `kwargs` over TOY_SCENES:

    unlabeled/<i>.png                                   pretraining images (any folder of images works)
    coco/{train,val}/<i>.png, coco/annotations/instances_{train,val}.json   COCO instance segmentation (RLE)
    ade/images/{training,validation}/<i>.png, ade/annotations/{training,validation}/<i>.png   semantic maps
    meta.json                                           the generator's arguments and the label convention
    `workers` processes share the scenes (the files are the same, byte for byte, for any number). Returns the meta
    dictionary.
    """
    unknown = sorted(set(kwargs) - set(TOY_SCENES))
    if unknown:
        raise UserError(f"unknown toy-scene argument(s) {', '.join(unknown)}; known: {', '.join(TOY_SCENES)}")
    args = dict(TOY_SCENES, **kwargs)
    args["radius"] = list(args["radius"])
    seed, num_unlabeled, num_train, num_val = (args[k] for k in ("seed", "num_unlabeled", "num_train", "num_val"))
    size, scene = args["size"], {k: args[k] for k in SCENE_KEYS}
    meta = {"generator": "asl.data.toy", **args, "classes": list(CLASSES),
            "semantic_labels": {"0": "background", **{str(i + 1): c for i, c in enumerate(CLASSES)},
                                str(IGNORE): "ignore (never written by the generator)"}}
    if os.path.exists(os.path.join(root, "meta.json")):
        os.remove(os.path.join(root, "meta.json"))  # incomplete until rewritten at the end
    os.makedirs(os.path.join(root, "unlabeled"), exist_ok=True)
    _remove_stale(os.path.join(root, "unlabeled"), num_unlabeled)
    splits = (("train", num_train, "training"), ("val", num_val, "validation"))
    for split, count, ade_split in splits:
        for sub in (f"coco/{split}", "coco/annotations", f"ade/images/{ade_split}", f"ade/annotations/{ade_split}"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
            if sub != "coco/annotations":
                _remove_stale(os.path.join(root, sub), count)
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        _chunked(pool, partial(_write_unlabeled, root, seed, scene), num_unlabeled, progress)
        for split, count, ade_split in splits:
            images, annotations = [], []
            for chunk_images, chunk_annotations in _chunked(
                    pool, partial(_write_labeled, root, split, ade_split, size, seed, scene), count, progress):
                images += chunk_images
                annotations += [{"id": len(annotations) + n + 1, **a} for n, a in enumerate(chunk_annotations)]
            coco = {"info": {"description": f"ASL toy scenes, {split} split", "seed": seed},
                    "images": images, "annotations": annotations, "categories": coco_categories()}
            with open(os.path.join(root, "coco", "annotations", f"instances_{split}.json"), "w") as f:
                json.dump(coco, f)
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def ensure_toy_scenes(root: str, require_match: bool = False, workers: int = 1, **kwargs) -> dict:
    """The toy scenes under `root`: generated with `kwargs` (over the defaults) in `workers` processes when no
    complete set is there (meta.json is written last, so it marks a finished generation). A complete set is never
    regenerated behind a user's back: a tool uses it as it is (noting any difference from `kwargs`), and with
    `require_match` (the pipeline, whose stages must all see one set) a difference is an error."""
    meta_path = os.path.join(root, "meta.json")
    if not os.path.exists(meta_path):
        return _generate_once(root, workers, **kwargs)
    with open(meta_path) as f:
        meta = json.load(f)
    differ = {k: (meta.get(k), v) for k, v in kwargs.items()
              if meta.get(k) != (list(v) if isinstance(v, tuple) else v)}
    if differ:
        what = ", ".join(f"{k}={have} (asked: {want})" for k, (have, want) in differ.items())
        if require_match:
            raise UserError(f"the toy scenes in {root} were generated with {what}; use another dataset root "
                            f"(--data-root) or regenerate them: python tools/make_toy_data.py --out {root} ...")
        print(f"note: using the toy scenes in {root} as they are: {what}", flush=True)
    return meta


def _running(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _generate_once(root: str, workers: int = 1, **kwargs) -> dict:
    """Generate the set beside `root` and rename it into place, so that tools starting together (a pipeline's or a
    sweep's parallel runs) never read a set another one is still writing: the first rename wins, the others
    discard theirs and read it. A folder at `root` with only the generator's folders and no meta.json is an
    interrupted generation: replaced; so is the copy beside it of a generation that was killed."""
    foreign = sorted(set(os.listdir(root)) - {"unlabeled", "coco", "ade"}) if os.path.isdir(root) else []
    if foreign:
        raise UserError(f"{root} holds {', '.join(foreign)} but no toy scenes (no meta.json); give another dataset "
                        "root (--data-root) or empty it")
    for stale in glob.glob(f"{glob.escape(root.rstrip(os.sep))}.partial-*"):  # left by a generation that was killed
        if not _running(stale.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    staging = f"{root.rstrip(os.sep)}.partial-{os.getpid()}"
    meta = write_toy_scenes(staging, workers=workers, **kwargs)
    try:
        os.rename(staging, root)
    except OSError:  # `root` exists: finished by another process meanwhile, or an interrupted generation
        if os.path.exists(os.path.join(root, "meta.json")):
            shutil.rmtree(staging)
            with open(os.path.join(root, "meta.json")) as f:
                return json.load(f)
        shutil.rmtree(root)
        os.rename(staging, root)
    return meta


CROP_MARGIN = 1.5  # crop side / the object's longer box side
MIN_CROP_FRACTION = 3 / 16  # of the scene's side: small objects keep some context
DOMINANCE = 2.0  # an object is a sample only if it shows this many times the pixels of any other one in its crop


def classification_objects(root: str, split: str) -> list:
    """Toy classification: one sample per dominant object, (file name, crop box, index into CLASSES).

    The crop is the square of side CROP_MARGIN x the longer side of the object's visible box (at least
    MIN_CROP_FRACTION of the scene) centred on the box, shifted to lie inside the image. An object is a sample
    only if it dominates its crop (DOMINANCE x the visible pixels of any other object there): the label is then
    well posed (a crop showing two shapes alike in size has no one right answer), also under crop augmentation."""
    with open(os.path.join(root, "coco", "annotations", f"instances_{split}.json")) as f:
        coco = json.load(f)
    images = {img["id"]: img for img in coco["images"]}
    masks = {ann["id"]: rle_decode(ann["segmentation"]) for ann in coco["annotations"]}
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["id"])
    samples = []
    for ann in coco["annotations"]:
        img = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        side = min(max(CROP_MARGIN * max(w, h), MIN_CROP_FRACTION * img["width"]), img["width"], img["height"])
        left = min(max(x + w / 2 - side / 2, 0), img["width"] - side)
        top = min(max(y + h / 2 - side / 2, 0), img["height"] - side)
        box = tuple(int(round(v)) for v in (left, top, left + side, top + side))
        window = (slice(box[1], box[3]), slice(box[0], box[2]))
        others = [masks[i][window].sum() for i in by_image[ann["image_id"]] if i != ann["id"]]
        if masks[ann["id"]][window].sum() >= DOMINANCE * max(others, default=0):
            samples.append((img["file_name"], box, ann["category_id"] - 1))
    return samples


def write_standard_layouts(toy_root: str, dataset_root: str) -> dict:
    """The toy scenes of `toy_root` also in the layouts of the real datasets under `dataset_root`, so that the
    real configs (COCO, ADE20K) run on them unchanged, e.g. to time them at full size:
    coco/{train2017,val2017}/ + coco/annotations/instances_{train,val}2017.json (links to the scenes, the same
    annotations) and ADEChallengeData2016/{images,annotations}/{training,validation}/ (JPEG images as ADE20K has,
    the label maps: 0 background, which ADE20K's reduce_zero_label ignores, 1-4 the shapes). Returns the counts."""
    counts = {}
    coco = os.path.join(dataset_root, "coco")
    os.makedirs(os.path.join(coco, "annotations"), exist_ok=True)
    for split, ade_split in (("train", "training"), ("val", "validation")):
        images = os.path.join(coco, f"{split}2017")
        if os.path.lexists(images):
            os.remove(images)
        os.symlink(os.path.abspath(os.path.join(toy_root, "coco", split)), images)
        with open(os.path.join(toy_root, "coco", "annotations", f"instances_{split}.json")) as f:
            data = json.load(f)
        with open(os.path.join(coco, "annotations", f"instances_{split}2017.json"), "w") as f:
            json.dump(data, f)
        ade = os.path.join(dataset_root, "ADEChallengeData2016")
        for kind in ("images", "annotations"):
            os.makedirs(os.path.join(ade, kind, ade_split), exist_ok=True)
        names = sorted(os.listdir(os.path.join(toy_root, "ade", "images", ade_split)))
        for name in names:
            stem = os.path.splitext(name)[0]
            with Image.open(os.path.join(toy_root, "ade", "images", ade_split, name)) as img:
                img.convert("RGB").save(os.path.join(ade, "images", ade_split, f"{stem}.jpg"), quality=95)
            with Image.open(os.path.join(toy_root, "ade", "annotations", ade_split, name)) as label:
                label.save(os.path.join(ade, "annotations", ade_split, f"{stem}.png"))
        counts[split] = {"coco_images": len(data["images"]), "ade_images": len(names)}
    return counts


def chance_levels(root: str) -> dict:
    """Scores of trivial predictors on the toy val split, in percent, by metric name: the most frequent class for
    every classification sample (top1: the dominant-object crops) and for every object (objects_top1: the object
    probes' samples, every instance of the scenes: none covers less than two 8-px tokens at 64 px), background
    everywhere (mIoU over the classes present, as mmseg's IoUMetric averages: background's IoU is its pixel
    share, every other class scores 0) and no detections."""
    def majority(labels):
        return 100.0 * max(labels.count(c) for c in set(labels)) / len(labels)

    with open(os.path.join(root, "coco", "annotations", "instances_val.json")) as f:
        objects = [ann["category_id"] for ann in json.load(f)["annotations"]]
    folder = os.path.join(root, "ade", "annotations", "validation")
    counts = np.zeros(256, np.int64)
    for name in sorted(os.listdir(folder)):
        with Image.open(os.path.join(folder, name)) as label_map:
            counts += np.bincount(np.asarray(label_map).ravel(), minlength=256)
    counts[IGNORE] = 0
    all_background = 100.0 * counts[BACKGROUND] / counts.sum() / np.count_nonzero(counts)
    crops = [label for _, _, label in classification_objects(root, "val")]
    return {"top1": majority(crops), "objects_top1": majority(objects), "box_AP": 0.0, "mask_AP": 0.0,
            "mIoU": all_background}
