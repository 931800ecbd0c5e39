"""Frozen-feature probes: what an encoder's features hold, measured in seconds, without training the encoder.

* kNN top-1: DINO's weighted k-nearest-neighbour classifier on L2-normalised features (cosine similarity,
  votes weighted by exp(similarity / T)).
* Linear top-1: a linear classifier on frozen features (standardised with the training set's statistics, as
  MAE's BatchNorm without affine does), trained with AdamW.
  Both classify either images (features: cls token and mean patch token) or objects of a COCO-format instance
  set (features: the patch tokens of the object's image pooled over its mask, `pool_objects`): the second
  measures the patch tokens themselves, where ASL's patch-level objective acts.
* Dense mIoU: a linear classifier on frozen patch tokens whose logits are bilinearly upsampled to the label map
  and trained with per-pixel cross-entropy; scored as mmseg's IoUMetric does (intersection and union summed
  over the whole split per class, classes absent from both prediction and ground truth left out of the mean).

Everything here is pure PyTorch and deterministic for a given seed; the tool is tools/probe.py.
"""
import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def encode(encoder, images: torch.Tensor, batch_size: int = 256, tokens: bool = False) -> dict:
    """Frozen features of `images` (N, 3, H, W), returned on the CPU whatever the encoder's device: `image`
    (N, 2C) = [cls token, mean patch token] after the final norm, and with `tokens` the patch tokens `grid`
    (N, C, h, w) in float16 (they can be many)."""
    encoder.eval()
    device = next(encoder.parameters()).device
    image, grid = [], []
    for start in range(0, len(images), batch_size):
        out = encoder.forward_features(images[start:start + batch_size].to(device, torch.float32))
        patches = out[:, 1:]
        image.append(torch.cat([out[:, 0], patches.mean(dim=1)], dim=1).float().cpu())
        if tokens:
            side = int(round(math.sqrt(patches.shape[1])))
            grid.append(patches.transpose(1, 2).reshape(len(out), -1, side, side).half().cpu())
    return {"image": torch.cat(image), **({"grid": torch.cat(grid)} if tokens else {})}


def knn_top1(train_x, train_y, test_x, test_y, num_classes: int, k: int = 20, temperature: float = 0.07,
             chunk: int = 1024) -> float:
    """DINO's weighted kNN classifier; top-1 accuracy in percent."""
    train_x, test_x = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    k = min(k, len(train_x))
    correct = 0
    for start in range(0, len(test_x), chunk):
        sim, idx = (test_x[start:start + chunk] @ train_x.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == test_y[start:start + chunk]).sum().item()
    return 100.0 * correct / len(test_x)


def standardize(train_x, *others, eps: float = 1e-6):
    """Features centred and scaled by the training set's per-dimension statistics."""
    mean, std = train_x.mean(0), train_x.std(0) + eps
    return [(x - mean) / std for x in (train_x, *others)]


def linear_top1(train_x, train_y, test_x, test_y, num_classes: int, epochs: int = 100, lr: float = 1e-3,
                weight_decay: float = 0.05, batch_size: int = 256, seed: int = 0) -> float:
    """A linear classifier on standardised frozen features (AdamW, cosine schedule); top-1 in percent."""
    train_x, test_x = standardize(train_x.float(), test_x.float())
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(train_x.shape[1], num_classes)
    torch.nn.init.normal_(head.weight, std=0.01, generator=gen)
    torch.nn.init.zeros_(head.bias)
    _train(head, lambda idx: F.cross_entropy(head(train_x[idx]), train_y[idx]), len(train_x), epochs, lr,
           weight_decay, batch_size, gen)
    with torch.no_grad():
        return 100.0 * (head(test_x).argmax(1) == test_y).float().mean().item()


def _train(module, loss_of, n: int, epochs: int, lr: float, weight_decay: float, batch_size: int, gen):
    """Mini-batch AdamW with a cosine learning-rate schedule over `epochs` passes of `n` samples."""
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    for step in range(total):
        if step % steps_per_epoch == 0:
            order = torch.randperm(n, generator=gen)
        idx = order[(step % steps_per_epoch) * batch_size:][:batch_size]
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
        opt.zero_grad(set_to_none=True)
        loss_of(idx).backward()
        opt.step()


def intersect_and_union(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = 255):
    """Per-class pixel counts (intersection, union, prediction, label) of one or more label maps, pixels labelled
    `ignore_index` left out: mmseg's IoUMetric.intersect_and_union."""
    keep = label != ignore_index
    pred, label = pred[keep], label[keep]
    inter = torch.bincount(pred[pred == label], minlength=num_classes)[:num_classes]
    area_pred = torch.bincount(pred, minlength=num_classes)[:num_classes]
    area_label = torch.bincount(label, minlength=num_classes)[:num_classes]
    return inter, area_pred + area_label - inter, area_pred, area_label


def iou_from_counts(inter: torch.Tensor, union: torch.Tensor):
    """(per-class IoU in percent, NaN where a class is in neither prediction nor label; their mean: mIoU)."""
    iou = torch.where(union > 0, 100.0 * inter.double() / union.clamp_min(1).double(), float("nan"))
    return iou, iou.nanmean().item()


def dense_miou(train_grid, train_maps, test_grid, test_maps, num_classes: int, ignore_index: int = 255,
               epochs: int = 30, lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: int = 16,
               seed: int = 0):
    """A 1x1-conv (linear) classifier on frozen patch tokens (N, C, h, w), logits upsampled bilinearly to the
    label maps (N, H, W) and trained with per-pixel cross-entropy; returns (per-class IoU list, mIoU) on the
    test maps in percent."""
    mean = train_grid.float().mean((0, 2, 3), keepdim=True)
    std = train_grid.float().std((0, 2, 3), keepdim=True) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    head = torch.nn.Conv2d(train_grid.shape[1], num_classes, 1)
    torch.nn.init.normal_(head.weight, std=0.01, generator=gen)
    torch.nn.init.zeros_(head.bias)

    def logits(grid, size):
        return F.interpolate(head((grid.float() - mean) / std), size=size, mode="bilinear", align_corners=False)

    def loss_of(idx):
        maps = train_maps[idx].long()
        return F.cross_entropy(logits(train_grid[idx], maps.shape[-2:]), maps, ignore_index=ignore_index)

    _train(head, loss_of, len(train_grid), epochs, lr, weight_decay, batch_size, gen)
    inter = union = 0
    with torch.no_grad():
        for start in range(0, len(test_grid), batch_size):
            maps = test_maps[start:start + batch_size].long()
            pred = logits(test_grid[start:start + batch_size], maps.shape[-2:]).argmax(1)
            i, u, _, _ = intersect_and_union(pred, maps, num_classes, ignore_index)
            inter, union = inter + i, union + u
    iou, miou = iou_from_counts(inter, union)
    return iou.tolist(), miou


def pool_objects(grid: torch.Tensor, weights: torch.Tensor, owner: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Object features (M, C): the patch tokens of each object's image (`grid` (N, C, h, w), image `owner`)
    averaged with the fraction of each token the object covers (`weights` (M, h * w)); `chunk` objects at a time,
    so that the (objects, C, tokens) product never holds all of them."""
    out = []
    for start in range(0, len(owner), chunk):
        tokens = grid.flatten(2)[owner[start:start + chunk]].float()  # (chunk, C, T)
        w = weights[start:start + chunk].float()
        out.append((tokens * w[:, None]).sum(2) / w.sum(1, keepdim=True))
    return torch.cat(out) if out else grid.new_zeros(0, grid.shape[1]).float()
