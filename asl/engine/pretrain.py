"""The pretraining loop for ASL and MAE: torchrun/DDP, AdamW, per-iteration warmup + half-cycle cosine,
gradient accumulation, AMP, optional torch.compile, atomic checkpoints with exact resume, logging."""
import json
import math
import os
import random
import time
from contextlib import nullcontext

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..checkpoint import save_atomic
from ..cli import UserError, dataset_root
from ..config import save_config
from ..data.cifar import CIFAR
from ..data.images import ImageFolder, ResumableSampler, SeededTransform, collate_skip_bad
from ..data.toy import ensure_toy_scenes
from ..data.transforms import pretrain_transform
from ..models import build_pretrain_model
from ..optim import param_groups
from ..optim.schedule import lr_at, set_lr
from . import distributed as du
from .logger import RunLogger, format_seconds, peak_memory_gib


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
        return SeededTransform(CIFAR(path or dataset_root(), kind, True), transform, seed, pick=0), kind
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
    return SeededTransform(ImageFolder(path, cache_file=cache), transform, seed), name


def rng_state() -> dict:
    """All RNG states as plain Python values (bytes, lists), so they gather across ranks and load with
    weights_only=True."""
    name, keys, *rest = np.random.get_state()
    state = {"torch": bytes(torch.get_rng_state().numpy()), "python": random.getstate(),
             "numpy": [name, keys.tolist(), *rest]}
    if torch.cuda.is_available():
        state["cuda"] = [bytes(s.numpy()) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict):
    as_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8)  # noqa: E731
    torch.set_rng_state(as_tensor(state["torch"]))
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([as_tensor(b) for b in state["cuda"]])


def find_resume(resume: str, run_dir: str):
    """'auto' -> the run's last checkpoint if any; a path -> that file (must exist); None -> no resume."""
    if not resume:
        return None
    if resume == "auto":
        path = os.path.join(run_dir, "checkpoints", "last.pth")
        return path if os.path.exists(path) else None
    if not os.path.exists(resume):
        raise UserError(f"checkpoint to resume from {resume!r} does not exist")
    return resume


def run_pretrain(cfg: dict, run_dir: str, resume: str = None) -> dict:
    rank, world_size, _, device = du.init_distributed()
    main = rank == 0
    rt, opt_cfg, mcfg = cfg["runtime"], cfg["optim"], cfg["model"]
    torch.manual_seed(rt["seed"] + rank)
    np.random.seed(rt["seed"] + rank)
    random.seed(rt["seed"] + rank)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    if main:
        save_config(cfg, os.path.join(run_dir, "config.json"))

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

    model_kwargs = {k: v for k, v in mcfg.items() if k not in ("arch", "img_size", "method")}
    model = build_pretrain_model(mcfg["arch"], mcfg["img_size"], mcfg["method"], **model_kwargs).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, opt_cfg["weight_decay"]), lr=base_lr,
                                  betas=tuple(opt_cfg["betas"]))
    amp = rt["amp"] if device.type == "cuda" else "none"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    step, epoch, micro_in_epoch = 0, 0, 0
    elapsed_before, last_loss = 0.0, None  # carried through checkpoints so a resumed run reports the whole run
    ckpt_path = find_resume(resume, run_dir)
    if ckpt_path:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, epoch, micro_in_epoch = ckpt["iteration"], ckpt["epoch"], ckpt["micro_in_epoch"]
        set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
        elapsed_before, last_loss = ckpt.get("elapsed_s", 0.0), ckpt.get("last_loss")
        if main:
            print(f"[pretrain] resumed from {ckpt_path} at iteration {step} (epoch {epoch + 1})", flush=True)
    elif resume and main:
        print("[pretrain] --resume auto: no checkpoint in the run directory, starting from scratch", flush=True)

    net = torch.compile(model) if rt.get("compile") else model
    if world_size > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def save(name):
        states = [None] * world_size
        if world_size > 1:
            torch.distributed.all_gather_object(states, rng_state())
        else:
            states = [rng_state()]
        if main:
            save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict(), "epoch": epoch, "micro_in_epoch": micro_in_epoch,
                         "iteration": step, "rng": states, "config": cfg, "last_loss": last_loss,
                         "elapsed_s": elapsed_before + time.time() - start_time},
                        os.path.join(run_dir, "checkpoints", name))

    logger = RunLogger(run_dir, enabled=main, tensorboard=rt.get("tensorboard", True))
    if main:
        print(f"[pretrain] {mcfg['method'].upper()} {mcfg['arch']} on {dataset_name} ({len(dataset)} images), "
              f"{world_size} process(es) on {device.type}, batch {eff_batch} (lr {base_lr:.3g}), "
              f"{steps_per_epoch} steps/epoch, {total_steps} steps; run dir {run_dir}", flush=True)
    warmup = opt_cfg["warmup_epochs"] * steps_per_epoch
    schedule_total = steps_per_epoch * opt_cfg["epochs"]
    start_time, start_step, skipped_total = time.time(), step, 0
    window = {"loss": 0.0, "n": 0, "imgs": 0, "t": time.time(), "terms": {}}
    net.train()
    try:
        while step < total_steps:
            sampler.set_epoch(epoch, micro_in_epoch * batch)
            dataset.epoch = epoch
            loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=cfg["data"]["num_workers"],
                                collate_fn=collate_skip_bad, drop_last=True, pin_memory=device.type == "cuda")
            for imgs, skipped in loader:
                skipped_total += skipped
                if micro_in_epoch % accum == 0:
                    lr = lr_at(step, base_lr, warmup, schedule_total, opt_cfg["min_lr"])
                    set_lr(optimizer, lr)
                sync = (micro_in_epoch + 1) % accum == 0
                if imgs is not None:
                    imgs = imgs.to(device, non_blocking=True)
                    no_sync = net.no_sync if (world_size > 1 and not sync) else nullcontext
                    with no_sync(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        out = net(imgs)
                        loss = out["loss"]
                    loss_value = loss.item()
                    if not math.isfinite(loss_value):
                        raise NonFiniteLoss(
                            f"loss is {loss_value} at iteration {step} (epoch {epoch + 1}); stopping. The last good "
                            f"checkpoint in {run_dir}/checkpoints is intact: lower the lr or use bf16, then --resume")
                    with no_sync():
                        scaler.scale(loss / accum).backward()
                    window["loss"] += loss_value
                    window["n"] += 1
                    window["imgs"] += imgs.shape[0] * world_size
                    for k, v in out["terms"].items():
                        window["terms"][k] = window["terms"].get(k, 0.0) + v.item()
                micro_in_epoch += 1
                if not sync:
                    continue
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if micro_in_epoch >= accum * steps_per_epoch:
                    epoch, micro_in_epoch = epoch + 1, 0
                if step % rt["log_every"] == 0 or step == total_steps:
                    last_loss = _log(logger, window, step, total_steps, epoch, opt_cfg["epochs"], lr,
                                     start_time, start_step, device, skipped_total)
                save_every_iters = rt.get("save_every_iters") or 0
                epoch_done = micro_in_epoch == 0 and epoch % max(rt["save_every_epochs"], 1) == 0
                if step == total_steps or (save_every_iters and step % save_every_iters == 0) or epoch_done:
                    save("last.pth")
                if micro_in_epoch == 0 and rt.get("keep_epoch_checkpoints") and epoch_done:
                    save(f"epoch_{epoch:04d}.pth")
                if step >= total_steps or micro_in_epoch == 0:
                    break
    finally:
        logger.close()
    wall = elapsed_before + time.time() - start_time
    metrics = {"stage": "pretrain", "dataset": dataset_name,
               "init": {"method": mcfg["method"], "checkpoint": None}, "model": mcfg["arch"],
               "metrics": {"loss": last_loss, "skipped_files": du.all_reduce_sum(skipped_total, device)},
               "iterations": step, "epochs": step / steps_per_epoch, "wall_time_s": wall,
               "config": os.path.join(run_dir, "config.json"),
               "checkpoint": os.path.join(run_dir, "checkpoints", "last.pth")}
    if main:
        with open(os.path.join(run_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        print(f"[pretrain] done: {step} steps in {format_seconds(wall)}, final loss {last_loss}, "
              f"{int(metrics['metrics']['skipped_files'])} unreadable files skipped; "
              f"checkpoint {metrics['checkpoint']}", flush=True)
    return metrics


def _log(logger, window, step, total_steps, epoch, epochs, lr, start_time, start_step, device, skipped):
    """Write one progress line / JSON record from the accumulated window and reset it; returns the mean loss."""
    n = max(window["n"], 1)
    loss = du.all_reduce_mean(window["loss"] / n, device)
    terms = {k: du.all_reduce_mean(v / n, device) for k, v in window["terms"].items()}
    now = time.time()
    img_s = window["imgs"] / max(now - window["t"], 1e-9)
    eta = (now - start_time) / max(step - start_step, 1) * (total_steps - step)
    mem = peak_memory_gib(device)
    record = {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}, "lr": lr, "img_per_s": img_s,
              "epoch": epoch, "mem_gib": mem, "skipped_files": skipped}
    term_text = " ".join(f"{k} {v:.4f}" for k, v in terms.items())
    line = (f"[pretrain] it {step}/{total_steps} ep {epoch}/{epochs} loss {loss:.4f} ({term_text}) lr {lr:.2e} "
            f"{img_s:.1f} img/s mem {mem:.2f}G eta {format_seconds(eta)}")
    logger.log(step, record, line)
    window.update(loss=0.0, n=0, imgs=0, t=now, terms={})
    return loss
