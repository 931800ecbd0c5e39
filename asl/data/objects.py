"""Objects of a COCO-format instance set for the object probes: each object as the fraction of every patch token
of its (resized) image that its mask covers, so that a frozen encoder's patch tokens can be pooled over it.

Images are resized to img_size x img_size (aspect not kept: the probe sees each image whole); masks (polygons,
RLE, compressed RLE) are decoded at the image's own size and area-pooled to the token grid, which is exact for
the resize. Crowd annotations are skipped, as are objects covering less than `min_tokens` tokens in all (no
token could speak for them); both counts are reported."""
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_utils

from ..cli import UserError
from .transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class ObjectSet:
    images: torch.Tensor  # (N, 3, S, S) normalised, float16
    weights: torch.Tensor  # (M, T) token coverage of each object, T = (S / patch)^2
    owner: torch.Tensor  # (M,) index of each object's image
    labels: torch.Tensor  # (M,) contiguous class index
    classes: list  # class names, in category-id order
    skipped: dict  # {"crowd": n, "too_small": n}


def decode_mask(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO annotation's segmentation (polygons, uncompressed or compressed RLE) as a boolean mask."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def read_coco_objects(annotation_file: str, image_dir: str, img_size: int, patch_size: int,
                      min_tokens: float = 0.5, limit: int = None) -> ObjectSet:
    """The objects of `annotation_file` (images under `image_dir`); `limit` keeps an evenly spaced `limit` of the
    images."""
    if not os.path.isfile(annotation_file):
        raise UserError(f"object probe: annotation file {annotation_file} does not exist")
    with open(annotation_file) as f:
        coco = json.load(f)
    categories = sorted(coco.get("categories", []), key=lambda c: c["id"])
    if not categories or not coco.get("annotations"):
        raise UserError(f"object probe: {annotation_file} has no categories or no annotations")
    index_of = {c["id"]: i for i, c in enumerate(categories)}
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = [img for img in coco["images"] if img["id"] in by_image]
    if limit and limit < len(images):
        images = [images[i] for i in np.linspace(0, len(images) - 1, limit).round().astype(int)]
    grid = img_size // patch_size
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels, weights, owner, labels = [], [], [], []
    skipped = {"crowd": 0, "too_small": 0}
    for img in images:
        path = os.path.join(image_dir, img["file_name"])
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
        except OSError as err:
            raise UserError(f"object probe: cannot read image {path} ({err})") from None
        height, width = img["height"], img["width"]
        if rgb.size != (width, height):
            raise UserError(f"object probe: {path} is {rgb.size[0]}x{rgb.size[1]}, its annotation says "
                            f"{width}x{height}")
        for ann in by_image[img["id"]]:
            if ann.get("iscrowd"):
                skipped["crowd"] += 1
                continue
            if ann["category_id"] not in index_of:
                raise UserError(f"object probe: {annotation_file}: annotation {ann['id']} has category id "
                                f"{ann['category_id']}, which is not in its categories")
            mask = torch.from_numpy(decode_mask(ann["segmentation"], height, width)).float()
            # each token of the resized image sees one (height / grid) x (width / grid) cell of the original
            cover = F.adaptive_avg_pool2d(mask[None, None], grid).flatten()
            if cover.sum() < min_tokens:
                skipped["too_small"] += 1
                continue
            weights.append(cover)
            owner.append(len(pixels))
            labels.append(index_of[ann["category_id"]])
        rgb = rgb.resize((img_size, img_size), Image.BILINEAR)
        tensor = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255).permute(2, 0, 1)
        pixels.append(((tensor - mean) / std).half())
    if not labels:
        raise UserError(f"object probe: no object of {annotation_file} covers {min_tokens} of a token at "
                        f"{img_size} px")
    return ObjectSet(torch.stack(pixels), torch.stack(weights), torch.tensor(owner), torch.tensor(labels),
                     [c["name"] for c in categories], skipped)
