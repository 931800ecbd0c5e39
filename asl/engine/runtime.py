"""The runtime shared by the toolkit's own training loops (pretraining, linear probing, fine-tuning): launch and
device, seeding, AMP, the run-directory guard, checkpoints that resume exactly (mid-epoch too), and preemption.

A loop builds one `Session`, asks it for the checkpoint to resume from, calls `session.stop_requested()` at step
boundaries and `session.save()` to checkpoint. SIGTERM / SIGUSR1 (what SLURM sends before a time limit or a
preemption) make the next step boundary save and raise `Preempted`; the tool then exits with EXIT_PREEMPTED, on
which the sbatch examples requeue the job.
"""
import fnmatch
import functools
import glob
import json
import os
import random
import shutil
import signal
import time
from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..checkpoint import save_atomic
from ..cli import UserError
from ..config import save_config
from ..data.transforms import MAE_CROP_SCALE
from ..records import write_json
from ..signals import Preempted, StopSignals
from . import launch as launcher
from .logger import RunLogger

# Keys that may change between the pieces of one run (they change neither the weights nor the data order);
# any other difference between the checkpoint's config and the new one refuses `--resume`.
RESUMABLE_KEYS = (
    "data.num_workers", "data.path", "data.file_list_cache",
    "runtime.log_every", "runtime.tensorboard", "runtime.max_iters", "runtime.save_every_iters",
    "runtime.save_every_epochs", "runtime.keep_every_epochs", "runtime.compile", "runtime.eval_every",
    "runtime.stop_check_every",
)
# Keys added after runs may have started, with the value a run without them had: a checkpoint that predates a key
# resumes when the key still says what that run did
ADDED_KEYS = {"data.crop_scale": list(MAE_CROP_SCALE)}
RUN_FILES = ("log.jsonl", "metrics.json", "config.json", "tensorboard")


class NonFiniteLoss(UserError):
    """Raised when the loss is NaN or infinite; the last good checkpoint is left untouched. Not the user's
    mistake as such, but reported the same way (one line), with exit status 1."""

    exit_code = 1


def flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def config_changes(saved: dict, new: dict, allowed=RESUMABLE_KEYS) -> list:
    """Dotted keys whose values differ between a checkpoint's config and the new one, except those matching an
    `allowed` pattern (fnmatch: "*.num_workers")."""
    old, now = flatten(json.loads(json.dumps(saved, default=str))), flatten(json.loads(json.dumps(new, default=str)))
    old = {**{k: v for k, v in ADDED_KEYS.items() if k in now}, **old}
    return sorted(k for k in set(old) | set(now) if old.get(k, "<absent>") != now.get(k, "<absent>")
                  and not any(fnmatch.fnmatchcase(k, pattern) for pattern in allowed))


def refuse_changed_config(saved: dict, new: dict, allowed=RESUMABLE_KEYS):
    changed = config_changes(saved, new, allowed)
    if changed:
        raise UserError(f"--resume: the config differs from the checkpoint's in {', '.join(changed[:8])}; resume "
                        f"with the run's config, or start a new run with --force (keys that may change: "
                        f"{', '.join(allowed)})")


def refuse_other_process_count(path: str, saved, current: int):
    """A run resumes on the number of processes that wrote its checkpoint (`saved`; None: not recorded): the
    sample order and the batch depend on it (pretraining, probing, fine-tuning, detection, segmentation)."""
    if saved is not None and saved != current:
        raise UserError(f"--resume: {path} was written by {saved} processes, this launch has {current}; resume "
                        "with the same number of processes")


def claim_run_dir(run_dir: str, holds_run: bool, resume: bool, force: bool, main: bool, run_files,
                  resume_flag: str, keep=()):
    """A new run never writes over another run's checkpoint: `holds_run` (the directory has one) without
    `resume` or `force` is refused, naming both flags. A new run (forced, or into a directory without a
    checkpoint) first removes the `run_files` an earlier run left, so no record mixes two runs; a resume never
    removes anything, and the files in `keep` (the run's initial weights) are never removed."""
    if force and resume:
        raise UserError("--force starts over and --resume continues: give one of them")
    if holds_run and not force and not resume:
        raise UserError(f"{run_dir} already holds a run (a checkpoint); continue it with {resume_flag}, or start "
                        "over with --force (deletes its checkpoints and logs)")
    if resume or not main or not os.path.isdir(run_dir):
        return
    kept = {os.path.realpath(k) for k in keep if k}
    for name in run_files:
        for target in glob.glob(os.path.join(run_dir, name)):
            if os.path.realpath(target) in kept:
                continue
            if os.path.isdir(target):
                shutil.rmtree(target)
            else:
                os.remove(target)


def base_lr(optim: dict, global_batch: int) -> float:
    """The run's lr: optim.lr if given, else MAE's linear scaling rule blr x global batch / 256."""
    return optim["lr"] or optim["blr"] * global_batch / 256


def accumulation(optim: dict, world_size: int) -> tuple:
    """(accum_iter, effective batch) of a launch of `world_size` processes. With `optim.global_batch` (the
    recipe's total batch) set, accum_iter = global_batch / (batch_size x world_size), so one config trains at the
    recipe's batch and lr on 1 or 64 GPUs; a launch it cannot divide over, or a given accum_iter that disagrees,
    is refused with one line. With global_batch None the batch is per process: batch_size x accum_iter (default
    1) x world_size."""
    batch, given, total = optim["batch_size"], optim.get("accum_iter"), optim.get("global_batch")
    for key, value in (("batch_size", batch), ("accum_iter", given), ("global_batch", total)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UserError(f"optim.{key} must be a positive integer, got {value!r}")
    if total is None:
        return given or 1, batch * (given or 1) * world_size
    undo = "or set optim.global_batch=None to train at batch_size x processes x accum_iter"
    if total % world_size:
        raise UserError(f"optim.global_batch={total} cannot be split over {world_size} processes; launch a number "
                        f"of processes that divides it, {undo}")
    per_process = total // world_size
    if per_process % batch:
        fits = max(d for d in range(1, min(batch, per_process) + 1) if per_process % d == 0)
        raise UserError(f"optim.global_batch={total} over {world_size} process(es) is {per_process} per process, "
                        f"which optim.batch_size={batch} does not divide; use a batch_size that divides it (e.g. "
                        f"optim.batch_size={fits}), {undo}")
    accum = per_process // batch
    if given is not None and given != accum:
        raise UserError(f"optim.accum_iter={given} contradicts optim.global_batch={total} = batch_size {batch} x "
                        f"{world_size} process(es) x accum {accum}; leave accum_iter out (it is derived), {undo}")
    return accum, total


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


def ignore_time_limit_signal(_worker_id=None):
    """DataLoader workers leave SIGUSR1 (SLURM's `--signal=USR1@N` before a time limit, sent to every process of
    the step) to the main process, which stops at a step boundary. SIGTERM keeps PyTorch's worker handling: the
    parent ends its workers with it (at exit too), and a worker that ignored it would hang the parent's exit."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _init_then_ignore(worker_init_fn, worker_id):
    if worker_init_fn is not None:
        worker_init_fn(worker_id)
    ignore_time_limit_signal()


def with_time_limit_signal_ignored(worker_init_fn):
    """A DataLoader worker_init_fn that runs `worker_init_fn` (None: nothing), then ignore_time_limit_signal; a
    partial of module functions, so that workers started by spawn or forkserver (which pickle it) get it too."""
    return functools.partial(_init_then_ignore, worker_init_fn)


def epoch_loader(dataset, sampler, batch_size, num_workers, seed, epoch, collate_fn=None, pin_memory=False):
    """The training loops' DataLoader of one epoch: worker seeds come from (seed, epoch), not from the global RNG,
    so creating it mid-epoch after a resume leaves the global RNG (masking, dropout) where the checkpoint left it;
    workers leave SIGUSR1 to the main process."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_fn, drop_last=True, pin_memory=pin_memory, generator=generator,
                      worker_init_fn=ignore_time_limit_signal if num_workers else None)


def trim_log(path: str, last_step: int):
    """Drop the records of log.jsonl written after `last_step` (the steps a resumed run repeats)."""
    if not os.path.exists(path):
        return
    def before(line):  # a line torn by a kill mid-write is dropped too
        try:
            return json.loads(line).get("step", 0) <= last_step
        except json.JSONDecodeError:
            return False

    with open(path) as f:
        kept = [line for line in f if line.strip() and before(line)]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(kept)
    os.replace(tmp, path)


class Session:
    """One run of a toolkit loop in `run_dir`: the process group, seeds, device and AMP, the directory guard and
    the checkpoint IO. `resume` is None, "auto" or a checkpoint path; `force` starts over in a used directory."""

    def __init__(self, cfg: dict, run_dir: str, tag: str, resume: str = None, force: bool = False):
        self.cfg, self.run_dir, self.tag = cfg, run_dir, tag
        self.launch = launcher.detect_launch()
        # the total batch is settled (or refused) before any process waits for the others
        self.accum_iter, self.global_batch = accumulation(cfg["optim"], self.launch.world_size)
        self.device = launcher.device_for(self.launch)
        launcher.join_group(self.launch, self.device)
        self.rank, self.world_size = self.launch.rank, self.launch.world_size
        self.main = self.rank == 0
        rt = cfg["runtime"]
        seed = rt["seed"] + self.rank
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        amp = rt.get("amp", "none") if self.device.type == "cuda" else "none"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        every = rt.get("stop_check_every")
        if every is not None and (not isinstance(every, int) or every < 1):
            raise UserError(f"runtime.stop_check_every must be a positive integer or None, got {every!r}")
        self.stop_check_every = every or (1 if self.world_size == 1 else 10)
        self.resume_path = self._claim_run_dir(resume, force)
        self.elapsed_before, self.started = 0.0, time.time()
        self.signals = StopSignals()
        self.logger = RunLogger(run_dir, enabled=self.main, tensorboard=rt.get("tensorboard", True))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------ run directory
    def path(self, *parts):
        return os.path.join(self.run_dir, *parts)

    def _claim_run_dir(self, resume, force):
        """The checkpoint to resume from (None: a new run); a resume refuses a changed config or process count."""
        last = self.path("checkpoints", "last.pth")
        if force and resume:
            raise UserError("--force starts over and --resume continues: give one of them")
        if resume and resume != "auto" and not os.path.isfile(resume):
            raise UserError(f"checkpoint to resume from {resume!r} does not exist")
        path = resume if resume and resume != "auto" else (last if resume == "auto" and os.path.exists(last)
                                                             else None)
        if path:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            refuse_changed_config(saved.get("config") or {}, self.cfg)
            refuse_other_process_count(path, saved.get("world_size"), self.world_size)
            if self.main:
                trim_log(self.path("log.jsonl"), saved["iteration"])
        elif resume and self.main:  # nothing to resume yet: keep what is there (kept epoch checkpoints)
            trim_log(self.path("log.jsonl"), 0)
        elif not resume:
            claim_run_dir(self.run_dir, os.path.exists(last), False, force, self.main,
                          RUN_FILES + ("checkpoints",), "--resume auto", keep=[self.cfg["model"].get("init")])
        self.barrier()
        os.makedirs(self.path("checkpoints"), exist_ok=True)
        if self.main:
            save_config(self.cfg, self.path("config.json"))
        return path

    def load(self) -> dict:
        """The resume checkpoint (None for a new run); restores this rank's RNG states and the run's wall time."""
        if not self.resume_path:
            return None
        ckpt = torch.load(self.resume_path, map_location="cpu", weights_only=True)
        states = ckpt["rng"]
        set_rng_state(states[self.rank] if self.rank < len(states) else states[0])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.elapsed_before = ckpt.get("elapsed_s", 0.0)
        self.log(f"resumed from {self.resume_path} at iteration {ckpt['iteration']}")
        return ckpt

    def save(self, name: str, state: dict):
        """Checkpoint `state` (+ every rank's RNG states, scaler, config, world size, wall time) atomically."""
        states = [None] * self.world_size
        if self.world_size > 1:
            torch.distributed.all_gather_object(states, rng_state())
        else:
            states = [rng_state()]
        if self.main:
            save_atomic({**state, "rng": states, "scaler": self.scaler.state_dict(), "config": self.cfg,
                         "world_size": self.world_size, "elapsed_s": self.elapsed()}, self.path("checkpoints", name))

    def write_metrics(self, record: dict):
        if self.main:
            write_json(self.path("metrics.json"), record)

    # ------------------------------------------------------------------------------------------ the loop's helpers
    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def optimizer_step(self, optimizer):
        """Step `optimizer` through the AMP scaler (unscaling, skipping a step with inf / NaN gradients in fp16)
        and clear the gradients."""
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def accumulating(self, net, last_micro: bool):
        """The context of one micro-step's forward and backward: DDP's no_sync on every micro-step but the last of
        an optimizer step, so that gradients are all-reduced once per step whatever the accumulation."""
        return net.no_sync() if self.world_size > 1 and not last_micro else nullcontext()

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def loader(self, dataset, sampler, batch_size, num_workers, epoch, collate_fn=None):
        return epoch_loader(dataset, sampler, batch_size, num_workers, self.cfg["runtime"]["seed"], epoch,
                            collate_fn, pin_memory=self.device.type == "cuda")

    def stop_requested(self, step: int) -> bool:
        """True at a step boundary after a stop signal reached any process (checked every stop_check_every
        steps when several processes must agree)."""
        if self.world_size == 1:
            return self.signals.received is not None
        if step % self.stop_check_every:
            return False
        flag = torch.tensor([self.signals.received is not None], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def preempt(self, step: int, state: dict):
        """Save `state` as last.pth and raise Preempted, on every process once the file is written (a launcher
        that kills the step at the first exit must not cut the write)."""
        self.save("last.pth", state)
        self.barrier()
        raise Preempted(self.signals.received or "stop signal", step, self.path("checkpoints", "last.pth"))

    def barrier(self):
        if self.world_size > 1:
            torch.distributed.barrier()

    def all_reduce(self, values, op="mean"):
        """Reduce a list of floats over the processes (mean or sum) in one collective."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return (t / self.world_size if op == "mean" else t).tolist()

    def log(self, text: str):
        if self.main:
            print(f"[{self.tag}] {text}", flush=True)

    def close(self):
        self.logger.close()
        self.signals.close()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
