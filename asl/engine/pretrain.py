"""The pretraining loop for ASL and MAE: DDP, AdamW, per-iteration warmup + half-cycle cosine, gradient
accumulation, optional torch.compile, logging; launch, AMP, checkpoints, exact resume and preemption come from
the shared runtime (asl.engine.runtime)."""
import math
import os
import time
from contextlib import nullcontext

import torch
from torch.nn.parallel import DistributedDataParallel

from ..cli import UserError, dataset_root
from ..data.cifar import CIFAR
from ..data.images import ImageFolder, ResumableSampler, SeededSamples, Transformed, collate_skip_bad
from ..data.toy import ensure_toy_scenes
from ..data.transforms import pretrain_transform
from ..models import build_pretrain_model
from ..optim import param_groups
from ..optim.schedule import lr_at, set_lr
from ..results import metrics_record
from .logger import RunLogger, format_seconds, peak_memory_gib
from .runtime import Session


class NonFiniteLoss(RuntimeError):
    """Raised when the loss is NaN or infinite; the last good checkpoint is left untouched."""


def build_dataset(data_cfg: dict, img_size: int, seed: int = 0, rank: int = 0):
    """The unlabeled pretraining set: a folder of images (default: the toy scenes) or CIFAR-10/100 images.
    `{datasets}` in paths stands for the dataset root ($ASL_DATASETS)."""
    transform = pretrain_transform(data_cfg["transform"], img_size)
    kind = data_cfg["dataset"]
    path = data_cfg.get("path") and data_cfg["path"].format(datasets=dataset_root())
    cache = data_cfg.get("file_list_cache") and data_cfg["file_list_cache"].format(datasets=dataset_root())
    if kind in ("cifar10", "cifar100"):
        return SeededSamples(Transformed(CIFAR(path or dataset_root(), kind, True), transform, pick=0), seed), kind
    if kind != "folder":
        raise UserError(f"data.dataset must be folder, cifar10 or cifar100, got {kind!r}")
    if not path:
        toy = os.path.join(dataset_root(), "toy_scenes")
        if rank == 0:
            ensure_toy_scenes(toy, **data_cfg.get("toy", {}))
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
        path = os.path.join(toy, "unlabeled")
        name = "toy_scenes"
    else:
        name = os.path.basename(os.path.normpath(path))
    return SeededSamples(Transformed(ImageFolder(path, cache_file=cache), transform), seed), name


def run_pretrain(cfg: dict, run_dir: str, resume: str = None, force: bool = False) -> dict:
    """Pretrain as `cfg` says into `run_dir` (one process, or one per device under torchrun / srun); returns the
    metrics.json record. Raises Preempted after checkpointing when a stop signal arrives."""
    session = Session(cfg, run_dir, "pretrain", resume, force)
    try:
        return _train(session, cfg)
    finally:
        session.close()


def _train(session: Session, cfg: dict) -> dict:
    rank, world_size, device, main = session.rank, session.world_size, session.device, session.main
    rt, opt_cfg, mcfg = cfg["runtime"], cfg["optim"], cfg["model"]
    model_kwargs = {k: v for k, v in mcfg.items() if k not in ("arch", "img_size", "method")}
    try:  # before any data is listed: a bad arch / method / loss is a one-line error at once
        model = build_pretrain_model(mcfg["arch"], mcfg["img_size"], mcfg["method"], **model_kwargs).to(device)
    except (KeyError, ValueError, TypeError) as err:
        raise UserError(f"model config: {err.args[0]}") from None
    dataset, dataset_name = build_dataset(cfg["data"], mcfg["img_size"], rt["seed"], rank)
    batch, accum = opt_cfg["batch_size"], opt_cfg["accum_iter"]
    sampler = ResumableSampler(len(dataset), rt["seed"], rank, world_size)
    micro_per_epoch = sampler.per_rank // batch
    steps_per_epoch = micro_per_epoch // accum
    if steps_per_epoch == 0:
        raise UserError(f"{len(dataset)} images cannot fill one step of batch {batch} x accum {accum} x "
                        f"{world_size} processes; lower optim.batch_size")
    total_steps = steps_per_epoch * opt_cfg["epochs"]
    if rt.get("max_iters"):
        total_steps = min(total_steps, rt["max_iters"])
    eff_batch = batch * accum * world_size
    base_lr = opt_cfg["lr"] or opt_cfg["blr"] * eff_batch / 256

    optimizer = torch.optim.AdamW(param_groups(model, opt_cfg["weight_decay"]), lr=base_lr,
                                  betas=tuple(opt_cfg["betas"]))
    step, epoch, micro_in_epoch, last_loss = 0, 0, 0, None
    ckpt = session.load()
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, epoch, micro_in_epoch = ckpt["iteration"], ckpt["epoch"], ckpt["micro_in_epoch"]
        last_loss = ckpt.get("last_loss")

    net = torch.compile(model) if rt.get("compile") else model
    if world_size > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def state():
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "micro_in_epoch": micro_in_epoch, "iteration": step, "last_loss": last_loss}

    run_dir = session.run_dir
    logger = RunLogger(run_dir, enabled=main, tensorboard=rt.get("tensorboard", True))
    session.log(f"{mcfg['method'].upper()} {mcfg['arch']} on {dataset_name} ({len(dataset)} images), "
                f"{world_size} process(es) on {device.type}, batch {eff_batch} (lr {base_lr:.3g}), "
                f"{steps_per_epoch} steps/epoch, {total_steps} steps; run dir {run_dir}")
    warmup = opt_cfg["warmup_epochs"] * steps_per_epoch
    schedule_total = steps_per_epoch * opt_cfg["epochs"]
    keep_every = rt.get("keep_every_epochs") or 0
    start_time, start_step, skipped_total = time.time(), step, 0
    window = Window(device)
    net.train()
    try:
        while step < total_steps:
            sampler.set_epoch(epoch, micro_in_epoch * batch)
            dataset.epoch = epoch
            loader = session.loader(dataset, sampler, batch, cfg["data"]["num_workers"], epoch, collate_skip_bad)
            for imgs, skipped in loader:
                skipped_total += skipped
                if micro_in_epoch % accum == 0:
                    lr = lr_at(step, base_lr, warmup, schedule_total, opt_cfg["min_lr"])
                    set_lr(optimizer, lr)
                sync = (micro_in_epoch + 1) % accum == 0
                if imgs is not None:
                    imgs = imgs.to(device, non_blocking=True)
                    no_sync = net.no_sync if (world_size > 1 and not sync) else nullcontext
                    with no_sync(), session.autocast():
                        out = net(imgs)
                    with no_sync():
                        session.scaler.scale(out["loss"] / accum).backward()
                    window.add(out, imgs.shape[0] * world_size)
                micro_in_epoch += 1
                if not sync:
                    continue
                session.scaler.step(optimizer)
                session.scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if micro_in_epoch >= accum * steps_per_epoch:
                    epoch, micro_in_epoch = epoch + 1, 0
                save_every_iters = rt.get("save_every_iters") or 0
                epoch_done = micro_in_epoch == 0 and epoch % max(rt["save_every_epochs"], 1) == 0
                saving = step == total_steps or (save_every_iters and step % save_every_iters == 0) or epoch_done
                if step % rt["log_every"] == 0 or saving:  # the loss is read (a host sync) only here
                    last_loss = _log(session, logger, window, step, total_steps, epoch, opt_cfg["epochs"], lr,
                                     start_time, start_step, skipped_total)
                if saving:
                    session.save("last.pth", state())
                if micro_in_epoch == 0 and keep_every and epoch % keep_every == 0:
                    session.save(f"epoch_{epoch:04d}.pth", state())
                if step < total_steps and session.stop_requested(step):
                    if window.n:
                        last_loss = _log(session, logger, window, step, total_steps, epoch, opt_cfg["epochs"], lr,
                                         start_time, start_step, skipped_total)
                    session.preempt(step, state())
                if step >= total_steps or micro_in_epoch == 0:
                    break
    finally:
        logger.close()
    skipped_all = session.all_reduce([skipped_total], op="sum")[0]
    metrics = metrics_record("pretrain", dataset_name, {"method": mcfg["method"], "checkpoint": None}, mcfg["arch"],
                             {"loss": last_loss, "skipped_files": skipped_all}, step, step / steps_per_epoch,
                             session.elapsed(), session.path("config.json"),
                             checkpoint=session.path("checkpoints", "last.pth"))
    session.write_metrics(metrics)
    session.log(f"done: {step} steps in {format_seconds(metrics['wall_time_s'])}, final loss {last_loss}, "
                f"{int(skipped_all)} unreadable files skipped; checkpoint {metrics['checkpoint']}")
    return metrics


class Window:
    """Loss sums of the steps since the last log line, kept on the device: reading them (a host sync) happens
    only at log and checkpoint time, not every step."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self):
        self.loss, self.terms, self.n, self.imgs, self.t = None, {}, 0, 0, time.time()

    def add(self, out: dict, imgs: int):
        loss = out["loss"].detach().float()
        self.loss = loss if self.loss is None else self.loss + loss
        for k, v in out["terms"].items():
            v = v.detach().float()
            self.terms[k] = v if k not in self.terms else self.terms[k] + v
        self.n += 1
        self.imgs += imgs


def _log(session, logger, window, step, total_steps, epoch, epochs, lr, start_time, start_step, skipped):
    """Write one progress line / JSON record from the window and reset it; returns the mean loss. A non-finite
    loss stops the run before anything is saved, so the last checkpoint stays good."""
    n = max(window.n, 1)
    names = list(window.terms)
    local = torch.stack([window.loss if window.loss is not None else torch.zeros((), device=session.device),
                         *(window.terms[k] for k in names)]).double().cpu() / n
    loss, *values = session.all_reduce(local.tolist())
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"loss is {loss} between iterations {step - window.n + 1} and {step} (epoch {epoch + 1}); stopping. "
            f"The last good checkpoint in {session.path('checkpoints')} is intact: lower the lr or use bf16, then "
            "--resume auto")
    terms = dict(zip(names, values))
    now = time.time()
    img_s = window.imgs / max(now - window.t, 1e-9)
    eta = (now - start_time) / max(step - start_step, 1) * (total_steps - step)
    mem = peak_memory_gib(session.device)
    record = {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}, "lr": lr, "img_per_s": img_s,
              "epoch": epoch, "mem_gib": mem, "skipped_files": skipped}
    term_text = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
    line = (f"[pretrain] it {step}/{total_steps} ep {epoch}/{epochs} loss {loss:.4f} ({term_text}) lr {lr:.2e} "
            f"{img_s:.1f} img/s mem {mem:.2f}G eta {format_seconds(eta)}")
    logger.log(step, record, line)
    window.reset()
    return loss
