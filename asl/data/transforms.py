"""Pretraining augmentations: MAE's (RandomResizedCrop scale 0.2-1, bicubic, flip) and the CIFAR recipe
(random crop with padding 4 + flip at 32 px). Global colour augmentations are deliberately absent: they hurt
MAE (the paper's appendix, Table 5); ASL augments in feature space instead."""
from torchvision import transforms as T

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def pretrain_transform(kind: str, img_size: int):
    if kind == "mae":
        crop = T.RandomResizedCrop(img_size, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    elif kind == "cifar":
        crop = T.RandomCrop(img_size, padding=4)
    else:
        raise ValueError(f"unknown pretraining transform {kind!r} (mae or cifar)")
    return T.Compose([crop, T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
