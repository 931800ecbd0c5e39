"""Pretraining augmentations: MAE's (RandomResizedCrop scale 0.2-1, bicubic, flip) and the CIFAR recipe
(random crop with padding 4 + flip at 32 px). Global colour augmentations are deliberately absent: they hurt
MAE (the paper's appendix, Table 5); ASL augments in feature space instead."""
from torchvision import transforms as T

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def cifar_crop(img_size: int):
    """The CIFAR recipe's crop: random crop with 4 px padding."""
    return T.RandomCrop(img_size, padding=4)


def crop_flip_normalize(crop):
    """`crop`, a horizontal flip, and ImageNet normalisation: the augmentation of pretraining and linear probing."""
    return T.Compose([crop, T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def pretrain_transform(kind: str, img_size: int):
    if kind == "mae":
        crop = T.RandomResizedCrop(img_size, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    elif kind == "cifar":
        crop = cifar_crop(img_size)
    else:
        raise ValueError(f"unknown pretraining transform {kind!r} (mae or cifar)")
    return crop_flip_normalize(crop)


def eval_transform(img_size: int, crop_ratio: float = None):
    """Resize the short side to img_size / crop_ratio, centre-crop, normalise. The default crop ratio is MAE's
    evaluation (224 / 256), or 1 (resize only) for CIFAR-sized inputs (<= 32 px)."""
    if crop_ratio is None:
        crop_ratio = 1.0 if img_size <= 32 else 224 / 256
    return T.Compose([T.Resize(int(round(img_size / crop_ratio)), T.InterpolationMode.BICUBIC),
                      T.CenterCrop(img_size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
