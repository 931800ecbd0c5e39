"""The pretraining loop for ASL and MAE: DDP, AdamW, per-iteration warmup + half-cycle cosine, gradient
accumulation, optional torch.compile, logging; launch, AMP, checkpoints, exact resume and preemption come from
the shared runtime (asl.engine.runtime)."""
import os
import time
from dataclasses import dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel

from ..cli import UserError, dataset_root
from ..data.cifar import CIFAR
from ..data.images import ImageFolder, ResumableSampler, SeededSamples, Transformed, collate_skip_bad
from ..data.shards import ShardedImages
from ..data.toy import ensure_toy_scenes
from ..data.transforms import (
    MAE_CROP_SCALE,
    DecodeCropFlip,
    check_crop_scale,
    has_fast_path,
    parse_transform,
    pretrain_transform,
    to_model_input,
)
from ..models import ARCHS, build_pretrain_model
from ..optim import param_groups
from ..optim.schedule import lr_at
from ..records import metrics_record
from .logger import format_seconds, peak_memory_gib
from .runtime import Session, base_lr
from .step import LossWindow, TrainStep, restore

TERM_NAMES = {"asl": ("recon", "recon_enh", "sem"), "mae": ("recon",)}  # the loss terms each method logs


def build_dataset(data_cfg: dict, img_size: int, seed: int = 0, rank: int = 0):
    """The unlabeled pretraining set: a folder of images (default: the toy scenes), a shard set
    (tools/make_shards.py) or CIFAR-10/100 images. `{datasets}` in paths stands for the dataset root
    ($ASL_DATASETS). With data.fast_decode, MAE's transform decodes the fast way (DecodeCropFlip: uint8 out,
    normalised on the device by the loop)."""
    crop_scale = check_crop_scale(data_cfg.get("crop_scale", MAE_CROP_SCALE))
    if crop_scale != MAE_CROP_SCALE and parse_transform(data_cfg["transform"])[0] != "mae":
        raise UserError(f"data.crop_scale={crop_scale} sets the mae recipe's crop; data.transform="
                        f"{data_cfg['transform']!r} crops the CIFAR way (4 px padding): leave crop_scale at 0.2,1.0")
    transform = pretrain_transform(data_cfg["transform"], img_size, crop_scale)
    kind = data_cfg["dataset"]
    path = data_cfg.get("path") and data_cfg["path"].format(datasets=dataset_root())
    cache = data_cfg.get("file_list_cache") and data_cfg["file_list_cache"].format(datasets=dataset_root())
    if kind in ("cifar10", "cifar100"):
        return SeededSamples(Transformed(CIFAR(path or dataset_root(), kind, True), transform, pick=0), seed), kind
    if kind not in ("folder", "shards"):
        raise UserError(f"data.dataset must be folder, shards, cifar10 or cifar100, got {kind!r}")
    fast = data_cfg.get("fast_decode", True) and has_fast_path(data_cfg["transform"])
    decode = DecodeCropFlip(img_size, crop_scale) if fast else None
    if kind == "shards":
        if not path:
            raise UserError("data.dataset=shards needs data.path, the folder tools/make_shards.py wrote")
        images = ShardedImages(path, decode=decode)
        name = os.path.basename(os.path.normpath(path))
    elif not path:
        toy = os.path.join(dataset_root(), "toy_scenes")
        if rank == 0:
            ensure_toy_scenes(toy, **data_cfg.get("toy", {}))
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
        images, name = ImageFolder(os.path.join(toy, "unlabeled"), decode=decode), "toy_scenes"
    else:
        images, name = ImageFolder(path, cache_file=cache, decode=decode), os.path.basename(os.path.normpath(path))
    return SeededSamples(images if fast else Transformed(images, transform), seed), name


def run_pretrain(cfg: dict, run_dir: str, resume: str = None, force: bool = False) -> dict:
    """Pretrain as `cfg` says into `run_dir` (one process, or one per device under torchrun / srun); returns the
    metrics.json record. Raises Preempted after checkpointing when a stop signal arrives."""
    with Session(cfg, run_dir, "pretrain", resume, force) as session:
        run = setup(session, cfg)
        while run.progress["step"] < run.total_steps:
            train_one_epoch(session, cfg, run)
            monitor(session, cfg, run)
        return finish(session, cfg, run)


def monitor(session: Session, cfg: dict, run: "PretrainRun"):
    """Every `runtime.eval_every` epochs and at the end (0: never), the frozen-feature probes of the encoder
    (`probe` section, as tools/probe.py's) into log.jsonl and tensorboard, as DINO logs kNN. The probes draw
    nothing from the training RNG, so a monitored run trains exactly as an unmonitored one."""
    every, p = cfg["runtime"].get("eval_every") or 0, run.progress
    if not (every and session.main and p["micro_in_epoch"] == 0
            and (p["epoch"] % every == 0 or p["step"] >= run.total_steps)):
        return
    from .probing import METRICS, ProbeData, measure

    start = time.time()
    with torch.random.fork_rng(devices=[]):
        if run.probe_data is None:
            patch = ARCHS[cfg["model"]["arch"]]["patch_size"]
            run.probe_data = ProbeData(cfg["probe"], cfg["model"]["img_size"], patch)
        metrics = measure(run.model.encoder, run.probe_data, cfg["probe"], cfg["runtime"]["seed"])
    record = {f"probe/{k}": metrics[k] for k in METRICS}
    session.logger.log(p["step"], {"epoch": p["epoch"], **record}, f"[probe] epoch {p['epoch']}: " + ", ".join(
        f"{k} {metrics[k]:.1f}" for k in METRICS) + f" ({time.time() - start:.0f} s)")


@dataclass
class PretrainRun:
    """What one pretraining run trains with, and where it is (`progress`, saved in every checkpoint)."""

    model: torch.nn.Module
    net: torch.nn.Module  # the model as trained: compiled and / or wrapped in DDP
    optimizer: torch.optim.Optimizer
    dataset: torch.utils.data.Dataset
    dataset_name: str
    sampler: ResumableSampler
    steps_per_epoch: int
    total_steps: int
    base_lr: float
    progress: dict = field(default_factory=lambda: dict(step=0, epoch=0, micro_in_epoch=0, last_loss=None))
    skipped: int = 0  # unreadable files of this piece of the run
    window: LossWindow = None
    probe_data: object = None  # the monitor's splits, read at its first use
    started: tuple = (0.0, 0)  # (time, step) this piece started at, for the ETA

    def state(self) -> dict:
        p = self.progress
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "iteration": p["step"],
                "epoch": p["epoch"], "micro_in_epoch": p["micro_in_epoch"], "last_loss": p["last_loss"]}


def setup(session: Session, cfg: dict) -> PretrainRun:
    """Model (checked before any data is listed), data, optimizer and schedule; the resume checkpoint loaded."""
    rt, opt_cfg, mcfg = cfg["runtime"], cfg["optim"], cfg["model"]
    model_kwargs = {k: v for k, v in mcfg.items() if k not in ("arch", "img_size", "method")}
    try:  # a bad arch / method / loss is a one-line error at once
        model = build_pretrain_model(mcfg["arch"], mcfg["img_size"], mcfg["method"], **model_kwargs)
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"model config: {err.args[0]}") from None
    model.to(session.device)
    dataset, dataset_name = build_dataset(cfg["data"], mcfg["img_size"], rt["seed"], session.rank)
    batch, accum, world_size = opt_cfg["batch_size"], session.accum_iter, session.world_size
    sampler = ResumableSampler(len(dataset), rt["seed"], session.rank, world_size)
    steps_per_epoch = sampler.per_rank // batch // accum
    if steps_per_epoch == 0:
        raise UserError(f"{len(dataset)} images cannot fill one step of batch {batch} x accum {accum} x "
                        f"{world_size} processes; lower optim.global_batch (optim.batch_size when it is None)")
    total_steps = steps_per_epoch * opt_cfg["epochs"]
    total_steps = min(total_steps, rt.get("max_iters") or total_steps)
    eff_batch = session.global_batch
    lr = base_lr(opt_cfg, eff_batch)
    optimizer = torch.optim.AdamW(param_groups(model, opt_cfg["weight_decay"]), lr=lr,
                                  betas=tuple(opt_cfg["betas"]))
    net = model
    if rt.get("compile"):
        from torch._inductor import config as inductor_config

        inductor_config.fallback_random = True  # the masks of eager mode: compiled = eager, resume exact
        net = torch.compile(model)
    if world_size > 1:
        device = session.device
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    run = PretrainRun(model, net, optimizer, dataset, dataset_name, sampler, steps_per_epoch, total_steps, lr)
    run.started = restore(session, model, optimizer, run.progress, "last_loss")
    run.window = LossWindow(session, run.progress["step"], TERM_NAMES[mcfg["method"]])
    session.log(f"{mcfg['method'].upper()} {mcfg['arch']} on {dataset_name} ({len(dataset)} images), "
                f"{world_size} process(es) on {session.device.type}, batch {eff_batch} = {batch} x {world_size} "
                f"x accum {accum} (lr {lr:.3g}), {steps_per_epoch} steps/epoch, {total_steps} steps; run dir "
                f"{session.run_dir}")
    return run


def train_one_epoch(session: Session, cfg: dict, run: PretrainRun):
    """The rest of the current epoch (all of it, unless the run resumed mid-epoch), or up to the last step.
    Checkpoints as the runtime config says; a stop signal checkpoints and raises Preempted."""
    rt, opt_cfg = cfg["runtime"], cfg["optim"]
    batch, accum, world_size = opt_cfg["batch_size"], session.accum_iter, session.world_size
    progress = run.progress
    warmup = opt_cfg["warmup_epochs"] * run.steps_per_epoch
    schedule_total = run.steps_per_epoch * opt_cfg["epochs"]
    keep_every, save_every_iters = rt.get("keep_every_epochs") or 0, rt.get("save_every_iters") or 0
    trainer = TrainStep(session, run.net, run.optimizer, progress,
                        lambda step: lr_at(step, run.base_lr, warmup, schedule_total, opt_cfg["min_lr"]))

    def log():
        progress["last_loss"] = _log(session, run.window, progress["step"], run.total_steps, progress["epoch"],
                                     opt_cfg["epochs"], trainer.lr, *run.started, run.skipped)

    def forward(imgs):
        out = run.net(imgs)
        run.window.add(out["loss"], out["terms"], imgs.shape[0] * world_size)
        return out

    run.sampler.set_epoch(progress["epoch"], progress["micro_in_epoch"] * batch)
    run.dataset.epoch = progress["epoch"]
    run.net.train()
    for imgs, skipped in session.loader(run.dataset, run.sampler, batch, cfg["data"]["num_workers"],
                                        progress["epoch"], collate_skip_bad):
        run.skipped += skipped
        if imgs is not None:
            imgs = to_model_input(imgs.to(session.device, non_blocking=True))
        _, stepped = trainer.micro(None if imgs is None else forward, imgs)
        if not stepped:
            continue
        step = progress["step"]
        if progress["micro_in_epoch"] >= accum * run.steps_per_epoch:
            progress["epoch"], progress["micro_in_epoch"] = progress["epoch"] + 1, 0
        epoch_end = progress["micro_in_epoch"] == 0
        saving = (step == run.total_steps or (save_every_iters and step % save_every_iters == 0)
                  or (epoch_end and progress["epoch"] % max(rt["save_every_epochs"], 1) == 0))
        if step % rt["log_every"] == 0 or saving:  # the loss is read (a host sync) only here
            log()
        if saving:
            session.save("last.pth", run.state())
        if epoch_end and keep_every and progress["epoch"] % keep_every == 0:
            session.save(f"epoch_{progress['epoch']:04d}.pth", run.state())
        if step < run.total_steps and session.stop_requested(step):
            if step % rt["log_every"] and not saving:  # unlogged steps (decided alike on every process)
                log()
            session.preempt(step, run.state())
        if step >= run.total_steps or epoch_end:
            return


def finish(session: Session, cfg: dict, run: PretrainRun) -> dict:
    """metrics.json of the whole run (every piece of it)."""
    mcfg, step, last_loss = cfg["model"], run.progress["step"], run.progress["last_loss"]
    skipped_all = session.all_reduce([run.skipped], op="sum")[0]
    metrics = metrics_record("pretrain", run.dataset_name, {"method": mcfg["method"], "checkpoint": None},
                             mcfg["arch"], {"loss": last_loss, "skipped_files": skipped_all}, step,
                             step / run.steps_per_epoch, session.elapsed(), session.path("config.json"),
                             checkpoint=session.path("checkpoints", "last.pth"))
    session.write_metrics(metrics)
    session.log(f"done: {step} steps in {format_seconds(metrics['wall_time_s'])}, final loss {last_loss}, "
                f"{int(skipped_all)} unreadable files skipped; checkpoint {metrics['checkpoint']}")
    return metrics


def _log(session, window, step, total_steps, epoch, epochs, lr, start_time, start_step, skipped):
    """Write one progress line / JSON record from the window (which a non-finite loss stops at, before anything
    is saved) and empty it; returns the mean loss."""
    read = window.read(step, epoch)
    terms = {k: read[k] for k in window.names}
    eta = (time.time() - start_time) / max(step - start_step, 1) * (total_steps - step)
    mem = peak_memory_gib(session.device)
    record = {"loss": read["loss"], **{f"loss_{k}": v for k, v in terms.items()}, "lr": lr,
              "img_per_s": read["img_per_s"], "epoch": epoch, "mem_gib": mem, "skipped_files": skipped}
    term_text = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
    line = (f"[pretrain] it {step}/{total_steps} ep {epoch}/{epochs} loss {read['loss']:.4f} ({term_text}) lr "
            f"{lr:.2e} {read['img_per_s']:.1f} img/s mem {mem:.2f}G eta {format_seconds(eta)}")
    session.logger.log(step, record, line)
    return read["loss"]
