"""Linear probing and end-to-end fine-tuning (MAE's protocols): DDP, per-iteration warmup + cosine, progress with
ETA, log.jsonl, metrics.json (top-1 / top-5); launch, AMP, checkpoints with exact resume (mid-epoch too) and
preemption come from the shared runtime (asl.engine.runtime)."""
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from PIL import Image
from timm.data import Mixup, auto_augment, create_transform
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.models.vision_transformer import init_weights_vit_timm
from timm.optim import Lars
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms as T

from ..checkpoint import load_encoder, load_into
from ..cli import UserError, dataset_root
from ..data.classification import build_classification_data
from ..data.images import ResumableSampler, SeededSamples
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, cifar_crop, crop_flip_normalize, eval_transform
from ..models import ARCHS, build_encoder
from ..models.classifier import ViTClassifier
from ..models.vit import ViTEncoder
from ..optim import param_groups
from ..optim.schedule import lr_at
from ..records import metrics_record
from .logger import format_seconds, peak_memory_gib
from .runtime import Session, base_lr
from .step import LossWindow, TrainStep, restore

MODES = ("linprobe", "finetune")


def _posterize(img, bits_to_keep, **_):
    """timm's RandAugment posterize, for a Pillow that refuses to keep 0 bits: at magnitude 10 (which MAE's
    m9-mstd0.5 reaches now and then) "PosterizeIncreasing" keeps 0 bits, which older Pillow turned into a black
    image and newer Pillow turns into a crashed data-loader worker. Keeping 0 bits gives the black image again."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return auto_augment.ImageOps.posterize(img, bits_to_keep)


_POSTERIZE_INSTALLED = False


def install_posterize_fix():
    """Make timm's posterize ops `_posterize`. Idempotent; run_classification calls it before any transform is
    built (timm's AugmentOp looks its op up in NAME_TO_OP when it is built, not when it runs)."""
    global _POSTERIZE_INSTALLED
    if not _POSTERIZE_INSTALLED:
        auto_augment.NAME_TO_OP.update(Posterize=_posterize, PosterizeIncreasing=_posterize,
                                       PosterizeOriginal=_posterize)
        _POSTERIZE_INSTALLED = True


def train_transform(mode: str, cfg: dict):
    """Linear probing: RandomResizedCrop (area fraction aug.crop_scale) + flip. Fine-tuning: timm's RandAugment
    pipeline as in MAE. CIFAR-sized inputs (<= 32 px) use random crop with padding instead of resized crops."""
    size, aug = cfg["model"]["img_size"], cfg["aug"]
    scale = tuple(aug["crop_scale"])
    if mode == "finetune":
        return create_transform(input_size=size, is_training=True, auto_augment=aug["rand_aug"],
                                interpolation="bicubic", re_prob=aug["reprob"], re_mode="pixel", re_count=1,
                                mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=scale if size > 32 else None)
    return crop_flip_normalize(cifar_crop(size) if size <= 32 else
                               T.RandomResizedCrop(size, scale=scale, interpolation=T.InterpolationMode.BICUBIC))


def init_encoder(mcfg: dict, drop_path: float = 0.0):
    """The encoder of `model.init` (any checkpoint that asl.checkpoint reads, every key accounted for) at
    `model.img_size`, or a random one of `model.arch`; and the initialisation's name."""
    if mcfg.get("init"):
        state, info = load_encoder(mcfg["init"])
        encoder = ViTEncoder(img_size=mcfg["img_size"], patch_size=info["patch_size"], in_chans=info["in_chans"],
                             embed_dim=info["embed_dim"], depth=info["depth"], num_heads=info["num_heads"],
                             mlp_ratio=info["mlp_ratio"], drop_path_rate=drop_path)
        load_into(encoder, state)
        return encoder, mcfg.get("init_name") or "pretrained"
    if mcfg["arch"] not in ARCHS:
        raise UserError(f"model.arch {mcfg['arch']!r} is unknown; known: {', '.join(ARCHS)}")
    # timm's ViT init, as MAE's from-scratch models_vit: trunc-normal(0.02) linear layers with zero biases; timm
    # also resets the other layers (the patch-embedding conv) to torch's defaults
    encoder = build_encoder(mcfg["arch"], mcfg["img_size"], drop_path_rate=drop_path)
    encoder.apply(init_weights_vit_timm)
    return encoder, "random"


def build_classifier(mode: str, mcfg: dict, num_classes: int):
    """The classifier and the name of its initialisation; weights from `model.init` (any checkpoint that
    asl.checkpoint reads), every encoder key accounted for, or random."""
    encoder, name = init_encoder(mcfg, drop_path=mcfg["drop_path"] if mode == "finetune" else 0.0)
    model = ViTClassifier(encoder, num_classes, pool=mcfg["pool"], head_bn=mode == "linprobe",
                          head_init_std=mcfg["head_init_std"])
    if mode == "linprobe":
        for p in model.parameters():
            p.requires_grad = False
        for p in model.head.parameters():
            p.requires_grad = True
    else:
        model.encoder.pos_embed.requires_grad = True  # learnable in fine-tuning, as in MAE
    return model, name


def build_optimizer(mode: str, model: nn.Module, ocfg: dict, lr: float):
    if mode == "linprobe":
        # LARS without weight decay; the trust ratio only on weight matrices, not on 1-D params (MAE's LARS),
        # which timm's Lars does with always_adapt per group.
        head = [p for p in model.head.parameters() if p.requires_grad]
        groups = [{"params": [p for p in head if p.ndim > 1], "always_adapt": True},
                  {"params": [p for p in head if p.ndim <= 1], "always_adapt": False}]
        return Lars([g for g in groups if g["params"]], lr=lr, momentum=ocfg["momentum"],
                    weight_decay=ocfg["weight_decay"])
    groups = param_groups(model, ocfg["weight_decay"], ocfg["layer_decay"], prefix="encoder.")
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(ocfg["betas"]))


@torch.no_grad()
def cache_features(model, dataset, batch, workers, device):
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers)
    model.eval()
    feats, labels = [], []
    for imgs, y in loader:
        feats.append(model.features(imgs.to(device)).float().cpu())
        labels.append(torch.as_tensor(y))
    return TensorDataset(torch.cat(feats), torch.cat(labels))


@torch.no_grad()
def evaluate(forward, loader, session, num_classes):
    correct1 = correct5 = count = 0
    for x, y in loader:
        logits = forward(x.to(session.device, non_blocking=True)).float()
        y = torch.as_tensor(y).to(session.device)
        top = logits.topk(min(5, num_classes), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        count += y.numel()
    correct1, correct5, count = session.all_reduce([correct1, correct5, count], op="sum")
    out = {"top1": 100.0 * correct1 / count}
    if num_classes > 5:
        out["top5"] = 100.0 * correct5 / count
    return out


def run_classification(cfg: dict, run_dir: str, mode: str, resume: str = None, force: bool = False) -> dict:
    """Linear probing or fine-tuning as `cfg` says into `run_dir`; returns the metrics.json record. Raises
    Preempted after checkpointing when a stop signal arrives."""
    assert mode in MODES
    install_posterize_fix()
    with Session(cfg, run_dir, mode, resume, force) as session:
        run = setup(session, cfg, mode)
        while run.progress["step"] < run.total_steps:
            if not train_one_epoch(session, cfg, run):
                session.save("last.pth", run.state())  # runtime.max_iters ended the run mid-epoch
                break
            end_epoch(session, cfg, run)
        return finish(session, cfg, run)


def build_criterion(mode: str, aug: dict, num_classes: int):
    """(mixup or None, loss): fine-tuning's mixup / cutmix with soft targets or label smoothing, else plain CE."""
    if mode == "finetune" and (aug.get("mixup", 0) > 0 or aug.get("cutmix", 0) > 0):
        mixup = Mixup(mixup_alpha=aug["mixup"], cutmix_alpha=aug["cutmix"], label_smoothing=aug["smoothing"],
                      num_classes=num_classes)
        return mixup, SoftTargetCrossEntropy()
    if mode == "finetune" and aug.get("smoothing", 0) > 0:
        return None, LabelSmoothingCrossEntropy(aug["smoothing"])
    return None, nn.CrossEntropyLoss()


@dataclass
class ClassificationRun:
    """What one linear-probing or fine-tuning run trains with, and where it is (`progress`, checkpointed)."""

    mode: str
    model: nn.Module
    trained: nn.Module  # the head (linear probing) or the whole model, as wrapped for DDP in `net`
    net: nn.Module
    optimizer: torch.optim.Optimizer
    train_set: SeededSamples
    val_loader: DataLoader
    sampler: ResumableSampler
    mixup: Mixup
    criterion: nn.Module
    cached: bool  # linear probing on features computed once
    names: dict  # init (its name), data (the dataset's), num_classes
    steps_per_epoch: int
    total_steps: int
    base_lr: float
    # step, epoch, micro_in_epoch; best and last evaluation; this epoch's train-loss sums so far
    progress: dict = field(default_factory=lambda: dict(step=0, epoch=0, micro_in_epoch=0, best={}, metrics={},
                                                        sums={"loss": 0.0, "seen": 0}))
    started: tuple = (0.0, 0)

    def forward(self, x):
        if self.mode == "linprobe":
            with torch.no_grad():
                x = x if self.cached else self.model.features(x)
        return self.net(x)

    def state(self) -> dict:
        p = self.progress
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "iteration": p["step"],
                "epoch": p["epoch"], "micro_in_epoch": p["micro_in_epoch"], "best": p["best"],
                "metrics": p["metrics"], "sums": p["sums"]}


def setup(session: Session, cfg: dict, mode: str) -> ClassificationRun:
    """Data, classifier (its arch checked before any data is listed), optimizer, schedule, loss; the resume
    checkpoint loaded."""
    mcfg, dcfg, ocfg, rt = cfg["model"], cfg["data"], cfg["optim"], cfg["runtime"]
    if not mcfg.get("init") and mcfg["arch"] not in ARCHS:
        raise UserError(f"model.arch {mcfg['arch']!r} is unknown; known: {', '.join(ARCHS)}")
    rank, world_size, device = session.rank, session.world_size, session.device
    cached = mode == "linprobe" and bool(dcfg.get("cache_features"))
    val_tf = eval_transform(mcfg["img_size"])
    train_set, val_set, classes, ds_name = build_classification_data(
        dcfg, val_tf if cached else train_transform(mode, cfg), val_tf, dataset_root())
    model, init_name = build_classifier(mode, mcfg, len(classes))
    model.to(device)
    if cached:
        train_set, val_set = (cache_features(model, s, ocfg["batch_size"], dcfg["num_workers"], device)
                              for s in (train_set, val_set))
    train_set = SeededSamples(train_set, rt["seed"])
    batch, accum, eff_batch = ocfg["batch_size"], session.accum_iter, session.global_batch
    lr = base_lr(ocfg, eff_batch)
    optimizer = build_optimizer(mode, model, ocfg, lr)
    sampler = ResumableSampler(len(train_set), rt["seed"], rank, world_size)
    steps_per_epoch = sampler.per_rank // batch // accum
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_set)} training images cannot fill one step of batch {eff_batch}; "
                        "lower optim.global_batch (optim.batch_size when it is None)")
    total_steps = steps_per_epoch * ocfg["epochs"]
    total_steps = min(total_steps, rt.get("max_iters") or total_steps)
    trained = model.head if mode == "linprobe" else model
    net = DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None) \
        if world_size > 1 else trained
    val_loader = DataLoader(torch.utils.data.Subset(val_set, range(rank, len(val_set), world_size)),
                            batch_size=batch, num_workers=dcfg["num_workers"])
    mixup, criterion = build_criterion(mode, cfg.get("aug", {}), len(classes))
    run = ClassificationRun(mode, model, trained, net, optimizer, train_set, val_loader, sampler, mixup, criterion,
                            cached, dict(init=init_name, data=ds_name, num_classes=len(classes)), steps_per_epoch,
                            total_steps, lr)
    run.started = restore(session, model, optimizer, run.progress, "best", "metrics", "sums")
    session.log(f"{init_name} {mcfg['arch'] if not mcfg.get('init') else mcfg['init']} on {ds_name} "
                f"({len(train_set)} train / {len(val_set)} val, {len(classes)} classes), {world_size} process(es) "
                f"on {device.type}, batch {eff_batch} = {batch} x {world_size} x accum {accum} (lr {lr:.3g}), "
                f"{ocfg['epochs']} epochs x {steps_per_epoch} steps; run dir {session.run_dir}")
    return run


def train_one_epoch(session: Session, cfg: dict, run: ClassificationRun) -> bool:
    """The rest of the current epoch; True when it ended, False when runtime.max_iters stopped it first.
    Checkpoints every runtime.save_every_iters steps; a stop signal checkpoints and raises Preempted."""
    ocfg, rt, mode = cfg["optim"], cfg["runtime"], run.mode
    batch, accum, world_size, device = ocfg["batch_size"], session.accum_iter, session.world_size, session.device
    progress, optimizer, sums = run.progress, run.optimizer, run.progress["sums"]
    warmup = ocfg["warmup_epochs"] * run.steps_per_epoch
    schedule_total = run.steps_per_epoch * ocfg["epochs"]
    save_every_iters, epoch_micros = rt.get("save_every_iters") or 0, run.steps_per_epoch * accum
    run.trained.train()
    run.sampler.set_epoch(progress["epoch"], progress["micro_in_epoch"] * batch)
    run.train_set.epoch = progress["epoch"]
    t0, seen0 = time.time(), sums["seen"]
    trainer = TrainStep(session, run.net, optimizer, progress,
                        lambda step: lr_at(step, run.base_lr, warmup, schedule_total, ocfg["min_lr"]))
    window = LossWindow(session, progress["step"])

    def fold():  # the one host sync (and all-reduce), before anything is saved
        sums["loss"] += window.read(progress["step"], progress["epoch"])["sum"] / world_size

    def forward(x, y):
        loss = run.criterion(run.forward(x), y)
        window.add(loss)
        return loss

    for x, y in session.loader(run.train_set, run.sampler, batch, cfg["data"]["num_workers"], progress["epoch"]):
        x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
        if run.mixup is not None:
            x, y = run.mixup(x, y)
        _, stepped = trainer.micro(forward, x, y)
        sums["seen"] += 1
        if not stepped:
            continue
        step = progress["step"]
        ending = progress["micro_in_epoch"] == epoch_micros or step >= run.total_steps
        saving = save_every_iters and step % save_every_iters == 0
        if ending or saving or step % rt["log_every"] == 0:
            fold()
        if step % rt["log_every"] == 0 and session.main:
            eta = (time.time() - run.started[0]) / max(step - run.started[1], 1) * (run.total_steps - step)
            print(f"[{mode}] ep {progress['epoch'] + 1}/{ocfg['epochs']} it {step}/{run.total_steps} loss "
                  f"{sums['loss'] / sums['seen']:.4f} lr {optimizer.param_groups[0]['lr']:.2e} "
                  f"{(sums['seen'] - seen0) * batch * world_size / (time.time() - t0):.1f} img/s "
                  f"mem {peak_memory_gib(device):.2f}G eta {format_seconds(eta)}", flush=True)
        if ending:
            break
        if saving:
            session.save("last.pth", run.state())
        if session.stop_requested(step):
            fold()
            session.preempt(step, run.state())
    return progress["micro_in_epoch"] == epoch_micros


def end_epoch(session: Session, cfg: dict, run: ClassificationRun):
    """Evaluate when due, log the epoch, checkpoint; a stop signal then raises Preempted."""
    ocfg, progress = cfg["optim"], run.progress
    progress["epoch"], progress["micro_in_epoch"] = progress["epoch"] + 1, 0
    epoch, sums = progress["epoch"], progress["sums"]
    record = {"epoch": epoch, "train_loss": session.all_reduce([sums["loss"] / max(sums["seen"], 1)])[0],
              "lr": run.optimizer.param_groups[0]["lr"]}
    progress["sums"] = {"loss": 0.0, "seen": 0}
    if epoch % cfg["runtime"]["eval_every"] == 0 or epoch == ocfg["epochs"]:
        run.model.eval()
        metrics = evaluate(run.model.head if run.cached else run.model, run.val_loader, session,
                           run.names["num_classes"])
        best = progress["best"]
        progress["best"] = {f"best_{k}": max(v, best.get(f"best_{k}", v)) for k, v in metrics.items()}
        progress["metrics"] = metrics
        record.update(metrics)
    session.logger.log(progress["step"], record, f"[{run.mode}] epoch {epoch}/{ocfg['epochs']}: " + ", ".join(
        f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
    session.save("last.pth", run.state())
    if progress["step"] < run.total_steps and session.stop_requested(progress["step"]):
        session.preempt(progress["step"], run.state())


def finish(session: Session, cfg: dict, run: ClassificationRun) -> dict:
    """metrics.json of the whole run (the last evaluation and the best of all)."""
    mcfg, p = cfg["model"], run.progress
    result = metrics_record(run.mode, run.names["data"], {"method": run.names["init"], "checkpoint": mcfg.get("init")},
                            mcfg["arch"], {**p["metrics"], **p["best"]}, p["step"], p["step"] / run.steps_per_epoch,
                            session.elapsed(), session.path("config.json"))
    session.write_metrics(result)
    session.log("done: " + ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items()) +
                f" ({format_seconds(result['wall_time_s'])}); {session.path('metrics.json')}")
    return result
