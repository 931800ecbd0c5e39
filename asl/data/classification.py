"""Labeled image sets for linear probing and fine-tuning: ImageNet-style class folders (ImageNet-100 = the
shipped class list applied to ImageNet), CIFAR-10/100 and the toy classification set (a square crop around each
object of the toy scenes, label = the shape of that object)."""
import os

from PIL import Image
from torch.utils.data import Dataset

from ..cli import UserError
from .cifar import CIFAR
from .images import IMAGE_EXTENSIONS, decode_images
from .toy import CLASSES, classification_objects, ensure_toy_scenes

# ImageNet-100: the 100 classes of CMC (Tian, Krishnan, Isola, "Contrastive Multiview Coding", 2019),
# https://github.com/HobbitLong/CMC/blob/master/imagenet100.txt
IMAGENET100_FILE = os.path.join(os.path.dirname(__file__), "imagenet100.txt")


def imagenet100_classes() -> list:
    with open(IMAGENET100_FILE) as f:
        return [line.strip() for line in f if line.strip()]


class LabeledImages(Dataset):
    """(image, label) from a list of (path, label) or (path, label, crop box), with a transform; images converted
    to RGB and cropped to the box (left, top, right, bottom) if there is one."""

    def __init__(self, samples, transform=None):
        self.samples, self.transform = samples, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label, *box = self.samples[index]
        with Image.open(path) as img:
            img = img.convert("RGB")
        if box:
            img = img.crop(box[0])
        return (self.transform(img) if self.transform else img), label


def class_folder_samples(root: str, classes: list = None):
    """Samples of an ImageNet-style split (root/<class>/<image>); `classes` restricts and orders the classes."""
    if not os.path.isdir(root):
        raise UserError(f"class-folder split {root!r} does not exist")
    present = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if classes is not None:
        missing = [c for c in classes if c not in present]
        if missing:
            raise UserError(f"{len(missing)} of the {len(classes)} classes are missing under {root!r} "
                            f"(first: {missing[0]})")
        present = list(classes)
    samples = [(os.path.join(root, c, f), i) for i, c in enumerate(present)
               for f in sorted(os.listdir(os.path.join(root, c))) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not samples:
        raise UserError(f"no images found under {root!r}")
    return samples, present


def check_images_decode(samples, root: str):
    """Every image of a user's class folders decodes in full (`decode_images`), so that a file that is not an
    image, or one cut short, is a one-line error naming it before training instead of a crash in an epoch."""
    bad = [(path, err) for (path, *_), (_, err) in zip(samples, decode_images([s[0] for s in samples])) if err]
    if bad:
        raise UserError(f"{len(bad)} file(s) under {root!r} do not decode as images (first: {bad[0][0]}, "
                        f"{bad[0][1]}); remove or replace them")


def build_classification_data(data_cfg: dict, train_transform, val_transform, dataset_root: str):
    """(train set, val set, class names, dataset name) for data.dataset in toy | imagenet100 | folder | cifar*."""
    kind = data_cfg["dataset"]
    path = data_cfg.get("path") and data_cfg["path"].format(datasets=dataset_root)
    if kind == "toy":
        root = path or os.path.join(dataset_root, "toy_scenes")
        if not path:  # the default location is generated on first use; a given path is used as it is
            ensure_toy_scenes(root, **data_cfg.get("toy", {}))
        elif not os.path.exists(os.path.join(root, "coco", "annotations", "instances_train.json")):
            raise UserError(f"{root!r} holds no toy scenes (coco/annotations/instances_train.json is missing); "
                            "run tools/make_toy_data.py --out it, or omit data.path")
        sets = [LabeledImages([(os.path.join(root, "coco", split, name), label, box)
                               for name, box, label in classification_objects(root, split)], transform)
                for split, transform in (("train", train_transform), ("val", val_transform))]
        return sets[0], sets[1], list(CLASSES), "toy_scenes"
    if kind in ("cifar10", "cifar100"):
        root = path or dataset_root
        train, val = CIFAR(root, kind, True, train_transform), CIFAR(root, kind, False, val_transform)
        return train, val, sorted(set(train.labels)), kind
    if kind in ("imagenet100", "folder"):
        root = path or os.path.join(dataset_root, "imagenet")
        classes = imagenet100_classes() if kind == "imagenet100" else None
        train, names = class_folder_samples(os.path.join(root, "train"), classes)
        val, _ = class_folder_samples(os.path.join(root, "val"), names)
        if kind == "folder":  # a user's own set (ImageNet's million files are not decoded ahead)
            check_images_decode(train + val, root)
        return LabeledImages(train, train_transform), LabeledImages(val, val_transform), names, kind
    raise UserError(f"data.dataset must be toy, imagenet100, folder, cifar10 or cifar100, got {kind!r}")
