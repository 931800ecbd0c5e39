"""The frozen-feature probes of asl.probe run on a config's data: tools/probe.py (a run directory with
metrics.json) and the pretraining monitor (`runtime.eval_every`) share `ProbeData` and `measure`."""
import os
import time

import torch
from torch.utils.data import DataLoader

from ..cli import UserError, dataset_root
from ..data.classification import build_classification_data
from ..data.label_maps import LabelMaps
from ..data.objects import read_coco_objects
from ..data.toy import ensure_toy_scenes
from ..data.transforms import eval_transform
from ..models import ARCHS
from ..probe import dense_miou, encode, knn_top1, linear_top1, pool_objects
from ..records import metrics_record
from .classification import init_encoder
from .logger import format_seconds
from .runtime import Session

METRICS = ("knn_top1", "linear_top1", "dense_mIoU")


def _stack(dataset, batch_size: int, workers: int, limit: int = None):
    """A whole split as two tensors (images in float16, labels); `limit` keeps an evenly spaced `limit` of the
    samples (class folders are sorted by class: the first ones would be a few classes only)."""
    if limit and limit < len(dataset):
        dataset = torch.utils.data.Subset(dataset, torch.linspace(0, len(dataset) - 1, limit).long().tolist())
    images, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        images.append(x.half())
        labels.append(torch.as_tensor(y))
    return torch.cat(images), torch.cat(labels)


class ProbeData:
    """The probes' splits, read once, all at the encoder's input size: for kNN and linear, either images with
    class labels (`classification`) or the objects of a COCO-format instance set (`objects`); for the dense probe,
    images with label maps."""

    def __init__(self, pcfg: dict, img_size: int, patch_size: int):
        root, workers, batch = dataset_root(), pcfg["num_workers"], pcfg["batch_size"]
        toy = pcfg.get("toy")
        toy_root = os.path.join(root, pcfg.get("toy_folder") or "toy_scenes")
        if toy is not None:
            ensure_toy_scenes(toy_root, **toy)
        o, c = pcfg.get("objects"), pcfg.get("classification")
        if bool(o) == bool(c):
            raise UserError("probe config: give one of probe.objects (a COCO-format instance set) and "
                            "probe.classification (class folders), not both or neither")
        self.objects = None
        if o:
            paths = {k: (o[k] or os.path.join(toy_root, default)).replace("{datasets}", root) for k, default in
                     (("annotations", "coco/annotations/instances_{split}.json"), ("images", "coco/{split}"))}
            self.objects = {split: read_coco_objects(paths["annotations"].format(split=split),
                                                     paths["images"].format(split=split), img_size, patch_size,
                                                     o["min_tokens"], o.get(f"max_{split}"))
                            for split in ("train", "val")}
            self.classes, self.cls_name = self.objects["train"].classes, o["name"]
            self.cls_train, self.cls_val = ((s.images, s.labels) for s in self.objects.values())
        else:
            tf = eval_transform(img_size, crop_ratio=1.0)
            train, val, self.classes, self.cls_name = build_classification_data(c, tf, tf, root)
            self.cls_train = _stack(train, batch, workers, c.get("max_train"))
            self.cls_val = _stack(val, batch, workers, c.get("max_val"))
        d = pcfg["dense"]
        seg_root = (d["path"] or os.path.join(toy_root, "ade")).format(datasets=root)
        self.num_classes, self.ignore_index = d["num_classes"], d["ignore_index"]
        self.dense_name = d["name"]
        self.dense_train, self.dense_val = (
            _stack(LabelMaps(seg_root, split, img_size, d["reduce_zero_label"], d["ignore_index"]), batch, workers,
                   d.get(f"max_{split}")) for split in ("train", "val"))
        present = torch.unique(self.dense_val[1])
        if present.max() >= self.num_classes and (present[present >= self.num_classes] != self.ignore_index).any():
            raise UserError(f"the label maps of {seg_root} hold labels >= dense.num_classes={self.num_classes} "
                            f"other than the ignore index {self.ignore_index}")


def measure(encoder, data: ProbeData, pcfg: dict, seed: int = 0) -> dict:
    """kNN top-1, linear top-1 and dense-probe mIoU of a frozen encoder (percent), and the dense per-class IoU."""
    batch = pcfg["batch_size"]
    was_training = encoder.training
    encoded = []

    def tokens(images):
        """The patch tokens of `images`, each set encoded once (the toy's object and dense splits are the same
        scenes)."""
        for seen, grid in encoded:
            if seen.shape == images.shape and torch.equal(seen, images):
                return grid
        encoded.append((images, encode(encoder, images, batch, tokens=True)["grid"]))
        return encoded[-1][1]

    if data.objects:
        train, val = (pool_objects(tokens(s.images), s.weights, s.owner) for s in data.objects.values())
    else:
        train, val = (encode(encoder, x, batch)["image"] for x in (data.cls_train[0], data.cls_val[0]))
    k = len(data.classes)
    metrics = {"knn_top1": knn_top1(train, data.cls_train[1], val, data.cls_val[1], k, **pcfg["knn"]),
               "linear_top1": linear_top1(train, data.cls_train[1], val, data.cls_val[1], k, seed=seed,
                                          **pcfg["linear"])}
    grids = [tokens(x) for x in (data.dense_train[0], data.dense_val[0])]
    per_class, metrics["dense_mIoU"] = dense_miou(grids[0], data.dense_train[1], grids[1], data.dense_val[1],
                                                  data.num_classes, data.ignore_index, seed=seed, **pcfg["dense_fit"])
    encoder.train(was_training)
    return {**metrics, "dense_IoU_per_class": per_class}


def run_probes(cfg: dict, run_dir: str, resume: str = None, force: bool = False) -> dict:
    """Probe `model.init` (or a random encoder) as `cfg` says into `run_dir`; returns the metrics.json record."""
    with Session(cfg, run_dir, "probe", resume, force) as session:
        if session.world_size > 1:
            raise UserError("the probes run in one process (they take seconds to minutes); start them without "
                            "torchrun / srun")
        mcfg, pcfg = cfg["model"], cfg["probe"]
        encoder, init_name = init_encoder(mcfg)
        encoder.to(session.device)
        start = time.time()
        session.log("reading the probes' splits into memory (one pass over each; minutes on ImageNet / ADE20K)")
        data = ProbeData(pcfg, mcfg["img_size"], ARCHS[mcfg["arch"]]["patch_size"])
        unit = "objects" if data.objects else "images"
        session.log(f"{init_name} encoder; {len(data.cls_train[1])} / {len(data.cls_val[1])} train / val {unit} of "
                    f"{data.cls_name}, {len(data.dense_train[1])} / {len(data.dense_val[1])} label maps of "
                    f"{data.dense_name} ({time.time() - start:.0f} s to read)")
        for split, objects in (data.objects or {}).items():
            if any(objects.skipped.values()):
                session.log(f"{split} objects skipped: {objects.skipped['crowd']} crowd, "
                            f"{objects.skipped['too_small']} covering less than {pcfg['objects']['min_tokens']} "
                            "of a token")
        metrics = measure(encoder, data, pcfg, cfg["runtime"]["seed"])
        record = metrics_record("probe", f"{data.cls_name} + {data.dense_name}",
                                {"method": init_name, "checkpoint": mcfg.get("init")}, mcfg.get("arch"), metrics,
                                0, None, session.elapsed(), session.path("config.json"))
        session.write_metrics(record)
        session.log("done: " + ", ".join(f"{k} {metrics[k]:.1f}" for k in METRICS) +
                    f" ({format_seconds(record['wall_time_s'])}); {session.path('metrics.json')}")
        return record
