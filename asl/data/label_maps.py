"""Image / label-map pairs for the dense probe: the toy scenes' ADE20K-style split and ADE20K itself, every pair
resized to one square size (image bicubic, labels nearest) so that a split stacks into one tensor."""
import os

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..cli import UserError
from .transforms import IMAGENET_MEAN, IMAGENET_STD

SPLITS = {"train": "training", "val": "validation"}  # ADE20K's folder names, which the toy scenes share


class LabelMaps(Dataset):
    """(normalised image (3, S, S), label map (S, S) int64) of `images/<split>/*` and `annotations/<split>/*.png`
    under `root`. `reduce_zero_label`: label 0 becomes `ignore_index` and every other label moves down by one
    (ADE20K, whose 0 is "other"); without it the labels are used as they are (the toy scenes: 0 = background)."""

    def __init__(self, root: str, split: str, size: int, reduce_zero_label: bool = False, ignore_index: int = 255):
        images, labels = (os.path.join(root, kind, SPLITS[split]) for kind in ("images", "annotations"))
        if not os.path.isdir(images) or not os.path.isdir(labels):
            raise UserError(f"{root!r} has no {images!r} and {labels!r} (the ADE20K layout)")
        stems = {os.path.splitext(n)[0]: n for n in os.listdir(labels) if n.endswith(".png")}
        self.pairs = sorted((os.path.join(images, n), os.path.join(labels, stems[os.path.splitext(n)[0]]))
                            for n in os.listdir(images) if os.path.splitext(n)[0] in stems)
        if not self.pairs:
            raise UserError(f"no image with a label map under {images!r} / {labels!r}")
        self.size, self.reduce_zero_label, self.ignore_index = size, reduce_zero_label, ignore_index
        self.mean, self.std = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        image_path, label_path = self.pairs[index]
        with Image.open(image_path) as img:
            image_size, image = img.size, img.convert("RGB").resize((self.size, self.size), Image.BICUBIC)
        with Image.open(label_path) as lab:
            if lab.size != image_size:
                raise UserError(f"{label_path}: the label map's size {lab.size} differs from its image's")
            label = np.asarray(lab.resize((self.size, self.size), Image.NEAREST), dtype=np.int64)
        if self.reduce_zero_label:
            label = np.where(label == 0, self.ignore_index + 1, label) - 1  # 0 -> ignore, 1..K -> 0..K-1
        image = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        return (image - self.mean) / self.std, torch.from_numpy(label)
