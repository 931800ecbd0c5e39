"""Pretraining augmentations, the one place they are built: MAE's recipe (RandomResizedCrop of area 0.2-1, or
`data.crop_scale`, bicubic, flip) and the CIFAR recipe (random crop with padding 4 + flip at 32 px), optionally
followed by the global augmentations of contrastive learning that the paper's appendix (Table 5) adds to MAE to
show that they hurt it: colour jitter, grayscale, Gaussian blur, solarize. The pretraining configs use none of
them; ASL augments in feature space instead.

`data.transform` names the recipe and, after "+", the global augmentations in the order they apply, e.g.
"mae", "mae+solarize", "mae+colorjitter+grayscale". They run after the flip on the [0, 1] image tensor, before the
normalisation, as torchvision.transforms.v2 ops. The paper names them but gives no parameters; ours are the
contrastive-learning values they come from (BYOL for jitter, grayscale and solarize, SimCLR for the blur), one view.
"""
import math
import warnings

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from ..cli import UserError, did_you_mean

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CROP_RECIPES = ("mae", "cifar")
MAE_CROP_SCALE = (0.2, 1.0)  # RandomResizedCrop's range of the crop's area, as a fraction of the image's [MAE]


def blur_kernel(img_size: int) -> int:
    """SimCLR's blur kernel: 10 % of the image side, odd (23 at 224 px, 3 at 32 px)."""
    return max(3, int(0.1 * img_size) // 2 * 2 + 1)


# name -> (img_size, p) -> transform; `p` is the probability of applying it (the default is the source's) [ours]
GLOBAL_AUGMENTATIONS = {
    # BYOL / MoCo v3: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, applied with p = 0.8
    "colorjitter": lambda img_size, p=0.8: v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=p),
    # BYOL / SimCLR: p = 0.2, ITU-R 601 luma copied to the three channels
    "grayscale": lambda img_size, p=0.2: v2.RandomGrayscale(p=p),
    # SimCLR: kernel 10 % of the side, sigma uniform in [0.1, 2.0], p = 0.5 (BYOL uses 1.0 / 0.1 on its two views)
    "gaussianblur": lambda img_size, p=0.5: v2.RandomApply([v2.GaussianBlur(blur_kernel(img_size), (0.1, 2.0))],
                                                            p=p),
    # BYOL's second view: values >= 0.5 (128 of 255) inverted, p = 0.2
    "solarize": lambda img_size, p=0.2: v2.RandomSolarize(0.5, p=p),
}


def _check_augmentation(name: str, context: str = ""):
    if name not in GLOBAL_AUGMENTATIONS:
        raise UserError(f"{context}unknown global augmentation {name!r}{did_you_mean(name, GLOBAL_AUGMENTATIONS)}; "
                        f"known: {', '.join(GLOBAL_AUGMENTATIONS)}")


def global_augmentation(name: str, img_size: int, p: float = None):
    """One global augmentation of Table 5 for float images in [0, 1]; `p` overrides its probability."""
    _check_augmentation(name)
    build = GLOBAL_AUGMENTATIONS[name]
    return build(img_size) if p is None else build(img_size, p)


def parse_transform(kind) -> tuple:
    """`data.transform` -> (crop recipe, [global augmentation names]); a one-line UserError for anything else."""
    example = "e.g. data.transform=mae or data.transform=mae+grayscale"
    if not isinstance(kind, str) or not kind:
        raise UserError(f"data.transform must be a string such as 'mae' or 'mae+solarize', got {kind!r}")
    recipe, *augs = kind.split("+")
    if recipe not in CROP_RECIPES:
        raise UserError(f"data.transform {kind!r}: unknown pretraining transform {recipe!r}"
                        f"{did_you_mean(recipe, CROP_RECIPES)} (mae or cifar, then +augmentations; {example})")
    for name in augs:
        _check_augmentation(name, f"data.transform {kind!r}: ")
    if len(set(augs)) != len(augs):
        raise UserError(f"data.transform {kind!r} names a global augmentation twice")
    return recipe, augs


def cifar_crop(img_size: int):
    """The CIFAR recipe's crop: random crop with 4 px padding."""
    return T.RandomCrop(img_size, padding=4)


def crop_flip_normalize(crop, augmentations=()):
    """`crop`, a horizontal flip, the global `augmentations` (on the [0, 1] tensor) and ImageNet normalisation: the
    augmentation of pretraining and linear probing."""
    return T.Compose([crop, T.RandomHorizontalFlip(), T.ToTensor(), *augmentations,
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def check_crop_scale(scale) -> tuple:
    """`data.crop_scale` as a (low, high) tuple of area fractions, 0 < low <= high <= 1; a one-line UserError
    for anything else."""
    try:
        if isinstance(scale, (str, bytes, dict)):
            raise TypeError
        low, high = (float(v) for v in scale)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not 0 < low <= high <= 1:
        raise UserError(f"data.crop_scale must be two area fractions 0 < low <= high <= 1 (MAE's: 0.2,1.0; the "
                        f"whole image: 1.0,1.0), got {scale!r}")
    return low, high


def pretrain_transform(kind: str, img_size: int, crop_scale=MAE_CROP_SCALE):
    """The pretraining transform named by `data.transform` (module docstring); `crop_scale` is the MAE recipe's
    range of crop areas ((1.0, 1.0): the whole image, flips only)."""
    recipe, augs = parse_transform(kind)
    if recipe == "mae":
        crop = T.RandomResizedCrop(img_size, scale=check_crop_scale(crop_scale),
                                   interpolation=T.InterpolationMode.BICUBIC)
    else:
        crop = cifar_crop(img_size)
    return crop_flip_normalize(crop, [global_augmentation(name, img_size) for name in augs])


def has_fast_path(kind: str) -> bool:
    """Whether `data.transform` can take DecodeCropFlip: MAE's crop + flip alone (the global augmentations work
    on float images, the CIFAR crop on 32 px images where decoding costs nothing)."""
    return parse_transform(kind) == ("mae", [])


class DecodeCropFlip:
    """MAE's pretraining crop and flip (RandomResizedCrop, area `scale` (MAE's 0.2-1), ratio 3/4-4/3, bicubic;
    flip p 0.5) from an opened, not yet decoded image to a uint8 CHW tensor, normalised later on the device by
    `to_model_input`.

    The crop and flip are drawn with torchvision's own code in the same order as `pretrain_transform("mae")`, from
    the image size in the header, so a seeded sample gets the same parameters either way. A JPEG is decoded at the
    smallest DCT scale (1/2, 1/4, 1/8) whose crop still covers the output size (PIL's `draft`) and resized as a
    uint8 tensor by torch's antialiased bicubic kernel (the crop's corners rounded to the reduced grid), which is
    where the speed comes from; it matches the slow path within a tolerance (tests/data/test_fast_decode.py).
    Other formats (PNG, the toy scenes) take PIL's resize: exactly the slow path's pixels. The output stays uint8,
    so workers send a quarter of the bytes."""

    def __init__(self, img_size: int, scale=MAE_CROP_SCALE, ratio=(3 / 4, 4 / 3)):
        self.img_size, self.scale, self.ratio = img_size, check_crop_scale(scale), ratio

    def params(self, img: Image.Image):
        """(top, left, height, width, flip): torchvision's RandomResizedCrop, then RandomHorizontalFlip's draw."""
        top, left, height, width = T.RandomResizedCrop.get_params(img, list(self.scale), list(self.ratio))
        return top, left, height, width, bool(torch.rand(1) < 0.5)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.apply(img, *self.params(img))

    def apply(self, img: Image.Image, top: int, left: int, height: int, width: int, flip: bool) -> torch.Tensor:
        """The crop (in the full image's pixels) decoded, resized to img_size x img_size, flipped: uint8 CHW."""
        if img.format == "JPEG":
            out = self._jpeg(img, top, left, height, width)
        else:
            # crop the whole pixels first, as torchvision does, then resize: the same pixels
            region = img.convert("RGB").crop((left, top, left + width, top + height))
            out = torch.from_numpy(np.array(region.resize((self.img_size,) * 2, Image.BICUBIC))).permute(2, 0, 1)
        return (out.flip(-1) if flip else out).contiguous()

    def _jpeg(self, img: Image.Image, top: int, left: int, height: int, width: int) -> torch.Tensor:
        size, (full_w, full_h) = self.img_size, img.size
        reduce = max(size / width, size / height)
        if reduce < 1:
            img.draft("RGB", (math.ceil(full_w * reduce), math.ceil(full_h * reduce)))
        sx, sy = img.size[0] / full_w, img.size[1] / full_h
        img.load()
        with warnings.catch_warnings():  # read-only pixels: only read, by the resize
            warnings.simplefilter("ignore", UserWarning)
            pixels = torch.from_numpy(np.asarray(img if img.mode == "RGB" else img.convert("RGB")))
        x0, y0 = round(left * sx), round(top * sy)
        x1, y1 = max(round((left + width) * sx), x0 + 1), max(round((top + height) * sy), y0 + 1)
        region = pixels[y0:y1, x0:x1].permute(2, 0, 1)[None]
        return torch.nn.functional.interpolate(region, size=(size, size), mode="bicubic", antialias=True)[0]


def to_model_input(imgs: torch.Tensor) -> torch.Tensor:
    """A batch as the model takes it: uint8 batches (DecodeCropFlip's) are cast and normalised where they are, on
    the device, with ToTensor's and Normalize's arithmetic; float batches are already normalised."""
    if imgs.dtype != torch.uint8:
        return imgs
    mean = torch.tensor(IMAGENET_MEAN, device=imgs.device).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=imgs.device).view(1, -1, 1, 1)
    return imgs.float().div(255).sub_(mean).div_(std)


def eval_transform(img_size: int, crop_ratio: float = None):
    """Resize the short side to img_size / crop_ratio, centre-crop, normalise. The default crop ratio is MAE's
    evaluation (224 / 256), or 1 (resize only) for CIFAR-sized inputs (<= 32 px)."""
    if crop_ratio is None:
        crop_ratio = 1.0 if img_size <= 32 else 224 / 256
    return T.Compose([T.Resize(int(round(img_size / crop_ratio)), T.InterpolationMode.BICUBIC),
                      T.CenterCrop(img_size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

