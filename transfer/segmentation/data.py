"""Datasets of the mmseg adapter: ADE20K (mmseg's own `ADE20KDataset`, standard layout under a root) and the
toy scenes (`ToyScenesDataset`), plus the checks a tool runs before training: every dataset root exists and holds
images, and the toy scenes are generated when absent (docs/conventions.md: every tool runs with no dataset).

ADE20K: $ASL_DATASETS/ADEChallengeData2016/{images,annotations}/{training,validation}, 150 classes, label 0
("other") becomes 255 (reduce_zero_label=True). Toy scenes: $ASL_DATASETS/toy_scenes/ade/..., the same layout with
.png images; 0 = background is a real class (reduce_zero_label=False), 1..4 = disc, square, triangle, ring.
"""
import inspect
import os
import time

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from asl.cli import UserError
from asl.data.images import IMAGE_EXTENSIONS, decode_images
from asl.data.toy import BACKGROUND, CLASSES, ensure_toy_scenes

TOY_CLASSES = ("background",) + CLASSES
TOY_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200]]


@DATASETS.register_module()
class ToyScenesDataset(BaseSegDataset):
    """The semantic split of the toy scenes (asl.data.toy), in ADE20K's folder layout with .png images."""
    METAINFO = dict(classes=TOY_CLASSES, palette=TOY_PALETTE)

    def __init__(self, img_suffix=".png", seg_map_suffix=".png", reduce_zero_label=False, **kwargs):
        assert BACKGROUND == 0
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=reduce_zero_label,
                         **kwargs)


LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def _datasets(cfg, loaders=LOADERS):
    """(name, dataset config) of every dataloader of the config; ConcatDataset-style wrappers are opened."""
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        stack = [loader["dataset"]]
        while stack:
            ds = stack.pop()
            if "datasets" in ds:
                stack.extend(ds["datasets"])
            elif "dataset" in ds:
                stack.append(ds["dataset"])
            else:
                yield name, ds


def _is_toy(ds):
    return ds.get("type") in ("ToyScenesDataset", ToyScenesDataset)


def _generate_toy(root):
    """Generate the toy scenes at `root` (the parent of `ade/`); under torchrun only local rank 0 writes."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"toy scenes not found under {root}: generating them (once, about a minute)", flush=True)
        ensure_toy_scenes(root)
        return
    deadline = time.time() + 1800
    while not os.path.exists(os.path.join(root, "meta.json")):
        if time.time() > deadline:
            raise UserError(f"timed out waiting for local rank 0 to generate the toy scenes under {root}")
        time.sleep(2)


def check_data_roots(cfg, loaders=LOADERS, generate_toy=True):
    """Every dataset of the config's `loaders` must exist and hold images; toy scenes are generated where absent.
    Raises UserError with what is missing and how to get it."""
    for loader, ds in _datasets(cfg, loaders):
        root = ds.get("data_root") or ""
        prefix = ds.get("data_prefix") or {}
        img_dir = os.path.join(root, prefix.get("img_path", ""))
        seg_dir = os.path.join(root, prefix.get("seg_map_path", ""))
        toy = _is_toy(ds)
        if toy and generate_toy and not os.path.isdir(img_dir) and os.path.basename(os.path.normpath(root)) == "ade":
            _generate_toy(os.path.dirname(os.path.normpath(root)))
        for folder, what in ((img_dir, "images"), (seg_dir, "annotations")):
            if os.path.isdir(folder):
                continue
            if toy:
                hint = ("generate them with tools/make_toy_data.py --out <root>, or point the config's data_root "
                        "at an existing toy_scenes/ade folder")
            else:
                hint = ("download ADEChallengeData2016.zip (http://data.csail.mit.edu/places/ADEchallenge/), unzip "
                        "it under the dataset root (--data-root, $ASL_DATASETS, default ./datasets), or give the "
                        "folder with --data-path")
            raise UserError(f"{loader}: the {what} folder {folder} does not exist: {hint}")
        img_suffix, seg_suffix = _suffixes(ds)
        names = os.listdir(img_dir)
        images = [n for n in names if n.endswith(img_suffix)]
        if not images:
            found = sorted({os.path.splitext(n)[1] for n in names if n.lower().endswith(IMAGE_EXTENSIONS)})
            raise UserError(f"{loader}: {img_dir} holds no {img_suffix} images" +
                            (f" (it has {', '.join(found)}): set {loader}.dataset.img_suffix={found[0]}" if found
                             else ": put the dataset's images there"))
        labelled = [n for n in images if os.path.exists(os.path.join(seg_dir, n[:-len(img_suffix)] + seg_suffix))]
        if not labelled:
            raise UserError(f"{loader}: no image of {img_dir} has its label map in {seg_dir} (e.g. "
                            f"{images[0][:-len(img_suffix)] + seg_suffix}); check the folders and "
                            f"{loader}.dataset.seg_map_suffix")


def _suffixes(ds):
    """(img_suffix, seg_map_suffix) of a dataset config: its own, else its type's defaults."""
    from mmseg.registry import DATASETS

    cls = ds.get("type")
    cls = DATASETS.get(cls) if isinstance(cls, str) else cls
    defaults = {}
    if cls is not None:
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                    if k in ("img_suffix", "seg_map_suffix")}
    return ds.get("img_suffix", defaults.get("img_suffix", ".jpg")), ds.get("seg_map_suffix",
                                                                           defaults.get("seg_map_suffix", ".png"))


def read_classes(spec: str) -> list:
    """--classes: a comma-separated list, or a file with one class name per line."""
    if os.path.isfile(spec):
        with open(spec) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [name.strip() for name in spec.split(",") if name.strip()]
    if len(names) < 2 or len(set(names)) < len(names):
        raise UserError(f"--classes {spec!r}: give at least two distinct class names (a comma-separated list or a "
                        "file with one name per line)")
    return names


def _image_suffix(folder: str) -> str:
    counts = {}
    for name in os.listdir(folder):
        ext = os.path.splitext(name)[1]
        if ext.lower() in IMAGE_EXTENSIONS:
            counts[ext] = counts.get(ext, 0) + 1
    if not counts:
        raise UserError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return max(counts, key=counts.get)


def check_label_maps(images: str, labels: str, num_classes: int, ignore_index: int, reduce_zero_label: bool,
                     img_suffix: str, seg_suffix: str = ".png") -> int:
    """Every image of `images` has a label map in `labels` of its size whose values are classes (after the zero
    reduction) or the ignore index, every image decoded in full (a file cut short too): one line naming the first
    file that is not. Returns the number of pairs."""
    import numpy as np
    from PIL import Image

    names = sorted(name for name in os.listdir(images) if name.endswith(img_suffix))
    label_paths = [os.path.join(labels, name[:-len(img_suffix)] + seg_suffix) for name in names]
    for name, label_path in zip(names, label_paths):
        if not os.path.exists(label_path):
            raise UserError(f"{os.path.join(images, name)} has no label map {label_path}")
    decoded = decode_images([os.path.join(images, name) for name in names])
    for name, label_path, (size, err) in zip(names, label_paths, decoded):
        if err:
            raise UserError(f"cannot read {os.path.join(images, name)} ({err})")
        try:
            with Image.open(label_path) as lm:
                label = np.asarray(lm)
        except OSError as err:
            raise UserError(f"cannot read {label_path}, the label map of {os.path.join(images, name)} "
                            f"({err})") from None
        if label.ndim != 2 or (label.shape[1], label.shape[0]) != size:
            raise UserError(f"{label_path} is {label.shape[1]}x{label.shape[0]}"
                            f"{'' if label.ndim == 2 else ' with several channels'}, its image {name} is "
                            f"{size[0]}x{size[1]}: a label map is one channel of class indices at the image's size")
        raw = np.unique(label).astype(np.int64)
        # mmseg's LoadAnnotations with reduce_zero_label: 0 and 255 become 255, every other label i becomes i - 1
        values = np.where((raw == 0) | (raw == 255), 255, raw - 1) if reduce_zero_label else raw
        bad = raw[(values >= num_classes) & (values != ignore_index)]
        if len(bad):
            raise UserError(f"{label_path} holds label {int(bad[0])}, beyond the {num_classes} classes"
                            f"{' (0 is ignored, 1 is the first class)' if reduce_zero_label else ''} and not the "
                            f"ignore index {ignore_index}")
    if not names:
        raise UserError(f"{images} holds no {img_suffix} images")
    return len(names)


def use_own_label_maps(cfg, paths: dict, classes: list, ignore_index: int = 255, reduce_zero_label: bool = False):
    """Point `cfg` at a user's label-map set: image and label folders per split ({train,val}_{images,labels}), its
    class names, the ignore index and whether label 0 means "ignore" (ADE20K's convention) rather than a class.
    The heads' class count and ignore index follow; every label map is checked first (check_label_maps)."""
    if reduce_zero_label and ignore_index != 255:
        raise UserError(f"--reduce-zero-label makes 0 (and 255) the ignored label 255, as mmseg's loader does; "
                        f"--ignore-index {ignore_index} cannot go with it: leave it at 255")
    splits = [s for s in ("train", "val") if paths.get(f"{s}_images") or paths.get(f"{s}_labels")]
    if "val" not in splits:
        raise UserError("your own label maps need at least --val-images and --val-labels (and --train-... to train)")
    for split in splits:
        for kind in ("images", "labels"):
            folder = paths.get(f"{split}_{kind}")
            if not folder:
                other = "labels" if kind == "images" else "images"
                raise UserError(f"--{split}-{other} is given but --{split}-{kind} is not")
            if not os.path.isdir(folder):
                raise UserError(f"--{split}-{kind} {folder} is not a folder")
    for split in splits:
        images, labels = (os.path.abspath(paths[f"{split}_{k}"]) for k in ("images", "labels"))
        suffix = _image_suffix(images)
        print(f"checking the {split} label maps in {labels} (one read of each)", flush=True)
        pairs = check_label_maps(images, labels, len(classes), ignore_index, reduce_zero_label, suffix)
        print(f"  {pairs} image / label-map pairs", flush=True)
        dataset = dict(type="BaseSegDataset", data_root="", metainfo=dict(classes=tuple(classes)),
                       data_prefix=dict(img_path=images, seg_map_path=labels), img_suffix=suffix,
                       seg_map_suffix=".png", reduce_zero_label=reduce_zero_label, ignore_index=ignore_index)
        loaders = ["train_dataloader"] if split == "train" else ["val_dataloader", "test_dataloader"]
        for loader in loaders:
            pipeline = cfg[loader]["dataset"].get("pipeline")
            for step in pipeline or []:
                if step.get("type") == "LoadAnnotations":
                    step["reduce_zero_label"] = reduce_zero_label
            cfg[loader]["dataset"] = dict(dataset, pipeline=pipeline)
    for head in ("decode_head", "auxiliary_head"):
        if cfg.model.get(head):
            cfg.model[head]["num_classes"] = len(classes)
            cfg.model[head]["ignore_index"] = ignore_index
            # a config's class weights (the toy's: background down-weighted) belong to its own classes
            losses = cfg.model[head].get("loss_decode")
            for loss in losses if isinstance(losses, list) else [losses] if losses else []:
                loss.pop("class_weight", None)
    for evaluator in ("val_evaluator", "test_evaluator"):
        if cfg.get(evaluator):
            cfg[evaluator]["ignore_index"] = ignore_index
    cfg.run_info = dict(cfg.get("run_info") or {}, dataset="custom")


def set_data_root(cfg, root):
    """Point every dataset of the config at `root` (the folder holding images/ and annotations/)."""
    for _, ds in _datasets(cfg):
        ds["data_root"] = root
