"""Datasets and the LSJ loader of the detectron2 adapter.

Datasets live under one root (`--data-root`, else $ASL_DATASETS, else ./datasets) in the standard layouts:

    asl_coco_2017_train / asl_coco_2017_val   <root>/coco/{train2017,val2017}, coco/annotations/instances_*2017.json
    asl_toy_train / asl_toy_val               <root>/toy_scenes/coco/{train,val}, .../annotations/instances_*.json

They are registered through detectron2's own `register_coco_instances` (names prefixed `asl_` so that they do not
shadow detectron2's built-in `coco_2017_*`, which follow $DETECTRON2_DATASETS). `prepare_datasets` checks every
annotation file a config uses before anything is built, so a missing root or a malformed file is one clear
sentence instead of a traceback from inside a data-loader worker; the toy scenes are generated when absent.
"""
import itertools
import json
import logging
import os

import detectron2.data.build as d2_build
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.data import (
    DatasetCatalog,
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.data.datasets import register_coco_instances
from detectron2.data.samplers import TrainingSampler
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm
from detectron2.utils.registry import locate
from omegaconf import OmegaConf

from asl.cli import UserError, dataset_root
from asl.data.images import decode_images
from asl.data.toy import ensure_toy_scenes
from asl.engine.runtime import with_time_limit_signal_ignored

logger = logging.getLogger("detectron2.asl")
# name -> (dataset family, image folder, annotation file), relative to the dataset root
SPLITS = {
    "asl_coco_2017_train": ("coco", "coco/train2017", "coco/annotations/instances_train2017.json"),
    "asl_coco_2017_val": ("coco", "coco/val2017", "coco/annotations/instances_val2017.json"),
    "asl_toy_train": ("toy_scenes", "toy_scenes/coco/train", "toy_scenes/coco/annotations/instances_train.json"),
    "asl_toy_val": ("toy_scenes", "toy_scenes/coco/val", "toy_scenes/coco/annotations/instances_val.json"),
}
TOY_HINT = ("or run on the built-in toy scenes: python tools/train_det.py (its default config, "
            "configs/detection/mask_rcnn_vitdet_toy_1000it.py; the scenes are generated on first use)")


_WORKER_INIT_INSTALLED = False


def install_worker_init():
    """Make the workers of detectron2's loaders also leave SIGUSR1 to the main process, which saves at a step
    boundary (SLURM signals every process of a step): wraps detectron2's worker_init_reset_seed, which its loader
    builders look up at each call. Idempotent; engine.run calls it in every process."""
    global _WORKER_INIT_INSTALLED
    if not _WORKER_INIT_INSTALLED:
        d2_build.worker_init_reset_seed = with_time_limit_signal_ignored(d2_build.worker_init_reset_seed)
        _WORKER_INIT_INSTALLED = True


def resolve_root(data_root: str = None) -> str:
    """--data-root, else $ASL_DATASETS, else ./datasets."""
    return os.path.abspath(data_root or dataset_root())


def register_datasets(root: str):
    """(Re-)register every split of SPLITS under `root` with detectron2's COCO loader. Cheap: nothing is read
    until a loader asks for the dataset. Call it in every process (detectron2's `launch` spawns fresh ones)."""
    for name, (_, images, annotations) in SPLITS.items():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_coco_instances(name, {}, os.path.join(root, annotations), os.path.join(root, images))


CUSTOM = {"train": "asl_custom_train", "val": "asl_custom_val"}  # a user's own set, given by paths


def use_own_dataset(cfg, paths: dict) -> dict:
    """Point `cfg` at a user's COCO-format set given by paths ({train,val}_{annotations,images}; both splits, or
    val only for evaluation), registered as asl_custom_{train,val} in this process (call it in every process).
    The class count comes from the annotation file's categories (ids need not be contiguous: detectron2 maps them
    to 0..K-1 and back for evaluation); a train set without any mask trains and evaluates boxes only. Returns a
    summary: classes, whether masks are used."""
    splits = [s for s in ("train", "val") if paths.get(f"{s}_annotations")]
    if "val" not in splits:
        raise UserError("your own dataset needs at least --val-annotations and --val-images (and --train-... to "
                        "train)")
    for split in splits:
        images = paths.get(f"{split}_images")
        if not images:
            raise UserError(f"--{split}-annotations is given but --{split}-images is not")
        annotations, images = os.path.abspath(paths[f"{split}_annotations"]), os.path.abspath(images)
        check_coco_file(annotations, images, f"--{split}-annotations", strict=True)
        name = CUSTOM[split]
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_coco_instances(name, {}, annotations, images)
        SPLITS[name] = ("custom", images, annotations)
    with open(os.path.abspath(paths[f"{splits[0]}_annotations"])) as f:
        data = json.load(f)
    classes = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    masks = any(a.get("segmentation") for a in data["annotations"] if not a.get("iscrowd", 0))
    if "train" in splits:
        cfg.dataloader.train.dataset.names = CUSTOM["train"]
        if not masks:  # LSJ recomputes boxes from the cropped masks; without masks the cropped boxes are kept
            cfg.dataloader.train.mapper.use_instance_mask = False
            cfg.dataloader.train.mapper.recompute_boxes = False
    cfg.dataloader.test.dataset.names = CUSTOM["val"]
    cfg.dataloader.evaluator.dataset_name = CUSTOM["val"]
    cfg.model.roi_heads.num_classes = len(classes)
    if not masks:  # boxes only: no mask head, and the evaluator scores boxes
        for key in ("mask_in_features", "mask_pooler", "mask_head"):
            cfg.model.roi_heads[key] = None
        cfg.dataloader.evaluator.tasks = ("bbox",)
    return {"classes": classes, "masks": masks}


def dataset_names(cfg, eval_only: bool = False) -> list:
    """The dataset names a LazyConfig's loaders use (train first, unless eval_only)."""
    names = []
    parts = ([] if eval_only else [("train", "dataset")]) + [("test", "dataset")]
    for loader, key in parts:
        node = OmegaConf.select(cfg, f"dataloader.{loader}.{key}.names", default=None)
        if node is None:
            continue
        names += [node] if isinstance(node, str) else list(node)
    return list(dict.fromkeys(names))


def family(names) -> str:
    """"coco", "toy_scenes", "custom" (a set given by paths), or the first name itself for other registered
    datasets (metrics.json's dataset)."""
    for name in names:
        if name in SPLITS:
            return SPLITS[name][0]
    return names[0] if names else "unknown"


def prepare_datasets(cfg, data_root: str = None, eval_only: bool = False) -> dict:
    """Make sure the datasets of `cfg` are there and well formed, before any model or loader is built.

    Generates the toy scenes when a toy split is used and they are absent (unless an explicitly given root does
    not exist), raises a UserError naming the problem otherwise. Returns {name: summary} with the number of
    images, of images with annotations (what detectron2 trains on) and of annotations."""
    explicit = bool(data_root or os.environ.get("ASL_DATASETS"))
    root = resolve_root(data_root)
    summaries = {}
    for name in dataset_names(cfg, eval_only):
        if name in CUSTOM.values():
            _, images, annotations = SPLITS[name]
            summaries[name] = check_coco_file(annotations, images, name, strict=True)
            continue
        if name not in SPLITS:
            if name not in DatasetCatalog.list():
                raise UserError(f"dataset {name!r} of the config is not registered; use one of "
                                f"{', '.join(SPLITS)} (under --data-root) or register it yourself")
            continue  # somebody else's dataset: detectron2 checks it
        kind, images, annotations = SPLITS[name]
        if not os.path.isdir(root):
            if explicit:
                raise UserError(f"dataset root {root} does not exist; give an existing folder with --data-root "
                                f"or $ASL_DATASETS, {TOY_HINT}")
        if kind == "toy_scenes" and not os.path.exists(os.path.join(root, annotations)):
            if os.path.isdir(os.path.join(root, "toy_scenes")) and os.listdir(os.path.join(root, "toy_scenes")):
                raise UserError(f"{os.path.join(root, 'toy_scenes')} exists but has no {annotations[11:]}; "
                                "regenerate it with python tools/make_toy_data.py")
            print(f"toy scenes not found under {root}: generating them (about 15 s)", flush=True)
            ensure_toy_scenes(os.path.join(root, "toy_scenes"))
        summaries[name] = check_coco_file(os.path.join(root, annotations), os.path.join(root, images), name)
    return summaries


def _missing_coco(name, json_file, image_dir):
    return UserError(f"{name}: {json_file} does not exist; put COCO in the standard layout under the dataset root "
                     f"(coco/train2017, coco/val2017, coco/annotations) and pass --data-root or set $ASL_DATASETS, "
                     f"{TOY_HINT}")


def check_coco_file(json_file: str, image_dir: str, name: str = "dataset", strict: bool = False) -> dict:
    """Validate a COCO instance annotation file (structure, ids, boxes, masks) and its image folder.
    Raises a UserError naming the first problem; returns a summary dict. `strict` (a user's own set): a box of
    zero area is an error too, and every image is decoded in full and its size checked against the annotation
    file; the standard sets skip both (COCO train2017 has two zero-height boxes, and decoding 118k files costs
    many minutes)."""
    if not os.path.isfile(json_file):
        raise _missing_coco(name, json_file, image_dir)
    if not os.path.isdir(image_dir):
        raise UserError(f"{name}: image folder {image_dir} does not exist (the annotations are at {json_file})")
    try:
        with open(json_file) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise UserError(f"{json_file} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                        "regenerate or re-download it") from None
    except UnicodeDecodeError:
        raise UserError(f"{json_file} is not a text (JSON) file; regenerate or re-download it") from None

    def bad(what):
        return UserError(f"{json_file} is not a COCO instance annotation file: {what}")

    if not isinstance(data, dict):
        raise bad(f"the top level is a {type(data).__name__}, expected an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise bad(f"'{key}' is {'missing' if key not in data else 'not a list'}")
    categories = set()
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
            raise bad(f"categories[{i}] lacks an integer 'id' or a 'name'")
        categories.add(cat["id"])
    if not categories:
        raise bad("it has no categories")
    images, files = {}, set(os.listdir(image_dir))
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or any(k not in img for k in ("id", "file_name", "height", "width")):
            raise bad(f"images[{i}] lacks one of id, file_name, height, width")
        if img["id"] in images:
            raise bad(f"image id {img['id']} appears twice")
        if img["file_name"] not in files and not os.path.exists(os.path.join(image_dir, img["file_name"])):
            raise UserError(f"{name}: image {img['file_name']} of {json_file} is not in {image_dir}")
        images[img["id"]] = img
    if not images:
        raise bad("it lists no images")
    if strict:
        _check_images(image_dir, list(images.values()), json_file)
    annotated, rle, degenerate = set(), 0, 0
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]" + (f" (id {ann.get('id')})" if isinstance(ann, dict) else "")
        if not isinstance(ann, dict):
            raise bad(f"{where} is not an object")
        if ann.get("image_id") not in images:
            raise bad(f"{where} refers to image id {ann.get('image_id')!r}, which is not in 'images'")
        if ann.get("category_id") not in categories:
            raise bad(f"{where} has category_id {ann.get('category_id')!r}, which is not in 'categories'")
        box = ann.get("bbox")
        if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)
                or box[2] < 0 or box[3] < 0):
            raise bad(f"{where} has bbox {box!r}, expected [x, y, width, height] with width, height >= 0")
        image = images[ann["image_id"]]
        if box[0] >= image["width"] or box[1] >= image["height"] or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
            raise bad(f"{where} has bbox {box!r} outside its {image['width']}x{image['height']} image "
                      f"{image['file_name']}")
        # COCO train2017 itself has two boxes of height 0: counted and named, left to detectron2, which drops
        # empty instances
        degenerate += box[2] <= 0 or box[3] <= 0
        if strict and (box[2] <= 0 or box[3] <= 0):
            raise bad(f"{where} has bbox {box!r} of zero area")
        _check_segmentation(ann.get("segmentation"), images[ann["image_id"]], where, bad)
        rle += isinstance(ann.get("segmentation"), dict) and not ann.get("iscrowd", 0)  # the mapper drops crowds
        if not ann.get("iscrowd", 0):
            annotated.add(ann["image_id"])
    if degenerate:
        logger.warning("%s: %d box(es) of zero width or height (detectron2 drops them)", json_file, degenerate)
    return {"images": len(images), "images_with_annotations": len(annotated),
            "annotations": len(data["annotations"]), "categories": len(categories), "rle_masks": rle,
            "zero_area_boxes": degenerate}


def _check_images(image_dir: str, images: list, json_file: str):
    """Every image of a user's set decodes in full (a file cut short too) at the size the annotations give."""
    paths = [os.path.join(image_dir, img["file_name"]) for img in images]
    for path, img, (size, err) in zip(paths, images, decode_images(paths)):
        if err:
            raise UserError(f"image {path} of {json_file} cannot be read ({err})")
        if size != (img["width"], img["height"]):
            raise UserError(f"image {path} is {size[0]}x{size[1]}, {json_file} says {img['width']}x{img['height']}")


def match_mask_format(cfg, summaries: dict):
    """Polygons are the train mapper's default mask format (ViTDet's: light in the loader); a train set with RLE
    masks on its (non-crowd) instances, as many custom exports have, needs "bitmask", which detectron2 builds
    from both."""
    mapper = OmegaConf.select(cfg, "dataloader.train.mapper", default=None)
    names = OmegaConf.select(cfg, "dataloader.train.dataset.names", default=None)
    names = [names] if isinstance(names, str) else list(names or [])
    rle = sum((summaries or {}).get(n, {}).get("rle_masks", 0) for n in names)
    if mapper is not None and rle and mapper.get("instance_mask_format", "polygon") == "polygon":
        mapper.instance_mask_format = "bitmask"
        logger.info("%d annotations of the train set are RLE masks: training with bitmask masks", rle)


def _check_segmentation(segm, image, where, bad):
    if segm is None:
        return  # boxes only; detectron2 then trains without masks of this instance
    if isinstance(segm, list):  # polygons
        if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segm):
            raise bad(f"{where} has a polygon segmentation that is not a list of [x1, y1, x2, y2, ...] "
                      "lists of at least 3 points")
        return
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        raise bad(f"{where} has a segmentation that is neither polygons nor RLE {{counts, size}}")
    size = segm["size"]
    if list(size) != [image["height"], image["width"]]:
        raise bad(f"{where} has an RLE of size {size} but its image is {image['height']}x{image['width']}")
    counts = segm["counts"]
    if isinstance(counts, list) and (sum(counts) != size[0] * size[1] or min(counts, default=0) < 0):
        raise bad(f"{where} has RLE counts summing to {sum(counts)}, expected {size[0] * size[1]} "
                  f"({size[0]}x{size[1]} pixels)")
    if not isinstance(counts, (list, str)):
        raise bad(f"{where} has RLE counts of type {type(counts).__name__}")


def lsj_augmentations(image_size: int, min_scale: float = 0.1, max_scale: float = 2.0) -> list:
    """ViTDet's large-scale jitter: flip, resize to [min_scale, max_scale] x image_size, crop image_size."""
    return [
        L(T.RandomFlip)(horizontal=True),
        L(T.ResizeScale)(min_scale=min_scale, max_scale=max_scale, target_height=image_size,
                         target_width=image_size),
        L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
    ]


def lsj_dataloader(train: str, test: str, image_size: int = 1024, total_batch_size: int = 64,
                   min_scale: float = 0.1, max_scale: float = 2.0, num_workers: int = 4,
                   mask_format: str = "polygon", use_fast_impl: bool = True):
    """The LazyConfig `dataloader` node of ViTDet's COCO LSJ recipe (its `coco_loader_lsj.py`, which is not
    installed with detectron2): train with LSJ and recomputed boxes, test at the longest side `image_size`,
    COCOEvaluator for box and mask AP. Nothing is built until the config is instantiated."""
    dataloader = OmegaConf.create()
    dataloader.train = L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names=train),
        mapper=L(DatasetMapper)(
            is_train=True,
            augmentations=lsj_augmentations(image_size, min_scale, max_scale),
            image_format="RGB",
            use_instance_mask=True,
            instance_mask_format=mask_format,
            recompute_boxes=True,  # boxes from the cropped masks
        ),
        total_batch_size=total_batch_size,
        num_workers=num_workers,
    )
    dataloader.test = L(build_detection_test_loader)(
        dataset=L(get_detection_dataset_dicts)(names=test, filter_empty=False),
        mapper=L(DatasetMapper)(
            is_train=False,
            augmentations=[L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)],
            image_format="${...train.mapper.image_format}",
        ),
        num_workers=num_workers,
    )
    dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}", use_fast_impl=use_fast_impl)
    return dataloader


class ResumableTrainingSampler(TrainingSampler):
    """detectron2's TrainingSampler (an endless stream of shuffled epochs from one seed, shared by all ranks) that
    starts after the first `skip` samples of each rank: a resumed run continues the sample order of the
    interrupted one instead of replaying it from the start (detectron2 stores no loader position)."""

    def __init__(self, size: int, seed: int, skip: int = 0):
        super().__init__(size, shuffle=True, seed=seed)
        self._skip = skip

    def __iter__(self):
        start = self._rank + self._skip * self._world_size
        yield from itertools.islice(self._infinite_indices(), start, None, self._world_size)


def build_train_loader(node, seed: int, start_iter: int = 0):
    """Instantiate the config's train loader (`dataloader.train`) with a ResumableTrainingSampler positioned at
    `start_iter`, unless the config chooses its own sampler (then it is built as detectron2 would)."""
    if node.get("sampler") is not None:
        return instantiate(node)
    dataset = instantiate(node.dataset)
    per_rank = node.total_batch_size // comm.get_world_size()
    sampler = ResumableTrainingSampler(len(dataset), seed, skip=start_iter * per_rank)
    target = node._target_
    target = locate(target) if isinstance(target, str) else target
    kwargs = {k: instantiate(node[k]) for k in node.keys() if k not in ("_target_", "dataset", "sampler")}
    return target(dataset=dataset, sampler=sampler, **kwargs)
