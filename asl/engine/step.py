"""The training step every loop of the toolkit shares (pretraining, linear probing, fine-tuning).

`TrainStep.micro` is one micro-step: the step's lr set at its first micro-step, the forward under autocast, the
loss scaled by 1 / accum and back-propagated with DDP's gradient all-reduce on the step's last micro-step only
(`no_sync` before it), then the optimizer step through the AMP scaler. `LossWindow` keeps the losses on the device
and reads them (one host sync, one all-reduce with several processes) only when a loop logs, saves or stops:
a NaN or infinite loss stops every process there, before anything is saved, as one NonFiniteLoss.
"""
import math
import time

import torch

from ..optim.schedule import set_lr
from .runtime import NonFiniteLoss, Session


def restore(session: Session, model, optimizer, progress: dict, *loop_keys: str):
    """Continue where the resume checkpoint of `session` left off, if there is one: weights, optimizer state, and
    `progress` (step, epoch, micro-step in the epoch, and the loop's own `loop_keys`). Returns (time, step) this
    piece of the run starts at, for its ETA."""
    ckpt = session.load()
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        progress.update(step=ckpt["iteration"], epoch=ckpt["epoch"], micro_in_epoch=ckpt["micro_in_epoch"],
                        **{key: ckpt.get(key) for key in loop_keys})
    return time.time(), progress["step"]


class TrainStep:
    """Micro-steps of `net` (the model as trained: compiled and / or DDP-wrapped) with `optimizer`; `progress`
    holds `step` (optimizer steps done) and `micro_in_epoch`, and is saved in the loop's checkpoints;
    `lr_at(step)` is the schedule."""

    def __init__(self, session: Session, net, optimizer, progress: dict, lr_at):
        self.session, self.net, self.optimizer, self.progress, self.lr_at = session, net, optimizer, progress, lr_at
        self.lr = lr_at(progress["step"])

    def micro(self, forward, *inputs):
        """One micro-step; `forward(*inputs)` returns the loss, or a dict holding it under "loss" (forward None: a
        batch with nothing to train on still counts). Returns (what forward returned, whether an optimizer step
        was made)."""
        session, p, accum = self.session, self.progress, self.session.accum_iter
        if p["micro_in_epoch"] % accum == 0:
            self.lr = self.lr_at(p["step"])
            set_lr(self.optimizer, self.lr)
        last = (p["micro_in_epoch"] + 1) % accum == 0
        out = None
        if forward is not None:
            with session.accumulating(self.net, last):
                with session.autocast():
                    out = forward(*inputs)
                loss = out["loss"] if isinstance(out, dict) else out
                session.scaler.scale(loss / accum).backward()
        p["micro_in_epoch"] += 1
        if last:
            session.optimizer_step(self.optimizer)
            p["step"] += 1
        return out, last


class LossWindow:
    """The loss (and the named loss terms) of the micro-steps since the last read, summed on the device."""

    def __init__(self, session: Session, step: int, names=()):
        self.session, self.names = session, tuple(names)
        self.reset(step)

    def reset(self, step: int):
        """Empty the window; `step` is the last optimizer step already read."""
        self.loss, self.terms, self.n, self.imgs, self.t, self.first_step = None, {}, 0, 0, time.time(), step + 1

    def add(self, loss: torch.Tensor, terms: dict = None, imgs: int = 0):
        loss = loss.detach().float()
        self.loss = loss if self.loss is None else self.loss + loss
        for k, v in (terms or {}).items():
            v = v.detach().float()
            self.terms[k] = v if k not in self.terms else self.terms[k] + v
        self.n += 1
        self.imgs += imgs

    def read(self, step: int, epoch: int) -> dict:
        """Sums and means over the window's micro-steps of every process (every process takes part in the same
        collective, a process whose window is empty with zeros), then an empty window: {"sum", "count", "loss"
        (the mean), the terms' means by name, "img_per_s" (this process)}. Raises NonFiniteLoss on every process
        when the loss of any is not finite."""
        zero = torch.zeros((), device=self.session.device)
        local = torch.stack([self.loss if self.loss is not None else zero,
                             *(self.terms.get(k, zero) for k in self.names)]).double().cpu().tolist()
        total, *term_sums, count = self.session.all_reduce([*local, self.n], op="sum")
        if not math.isfinite(total):
            raise NonFiniteLoss(
                f"loss is {total / max(count, 1)} between iterations {self.first_step} and {step} (epoch "
                f"{epoch + 1}); stopping. The last good checkpoint in {self.session.path('checkpoints')} is intact: "
                "lower the lr or use bf16, then --resume auto")
        out = {"sum": total, "count": count, "loss": total / max(count, 1),
               "img_per_s": self.imgs / max(time.time() - self.t, 1e-9),
               **{k: v / max(count, 1) for k, v in zip(self.names, term_sums)}}
        self.reset(step)
        return out
