"""`JsonLinesHook`: the run directory's `log.jsonl` (docs/conventions.md), one JSON object per logged training step and
per evaluation, beside mmengine's own logs; it also keeps the last evaluation's metrics for metrics.json."""
import json
import math
import os
import time

from mmengine.dist import barrier, is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@HOOKS.register_module()
class JsonLinesHook(Hook):
    priority = "LOW"  # after IterTimerHook and LoggerHook have updated the message hub

    def __init__(self, interval: int = None, filename: str = "log.jsonl"):
        self.interval = interval
        self.filename = filename
        self.last_metrics = None

    def before_run(self, runner):
        if self.interval is None:
            logger = runner.cfg.get("default_hooks", {}).get("logger") or {}
            self.interval = logger.get("interval", 50)
        self.path = os.path.join(runner.work_dir, self.filename)
        self.start, self.elapsed_before = time.time(), 0.0

    def elapsed(self) -> float:
        """Seconds of training so far, the pieces before a --resume included (they travel in the checkpoints)."""
        return self.elapsed_before + time.time() - self.start

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint.setdefault("meta", {})["asl_elapsed_s"] = self.elapsed()

    def after_load_checkpoint(self, runner, checkpoint):
        self.elapsed_before = checkpoint.get("meta", {}).get("asl_elapsed_s", 0.0)

    def _write(self, record):
        if not is_main_process():
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            return
        tag, _ = runner.log_processor.get_log_after_iter(runner, batch_idx, "train")
        self._write({"mode": "train", "iter": runner.iter + 1, "max_iters": runner.max_iters,
                     "elapsed_s": self.elapsed(), **tag})

    def _metrics(self, runner, mode, metrics):
        self.last_metrics = {k: _plain(v) for k, v in (metrics or {}).items()}
        self._write({"mode": mode, "iter": runner.iter, "elapsed_s": self.elapsed(), **self.last_metrics})

    def after_val_epoch(self, runner, metrics=None):
        self._metrics(runner, "val", metrics)

    def after_test_epoch(self, runner, metrics=None):
        self._metrics(runner, "test", metrics)


class StopTraining(BaseException):
    """Leaves mmengine's loop after StopOnSignalHook saved (a BaseException: no hook treats it as a crash)."""


class StopOnSignalHook(Hook):
    """A stop signal (SIGTERM / SIGUSR1, what SLURM sends before a time limit or a preemption) saves a resumable
    iter_N.pth (+ last_checkpoint) at the next iteration boundary and leaves the loop; all processes agree."""

    priority = "VERY_LOW"  # after the logger and checkpoint hooks of the same iteration

    def __init__(self, signals):
        self.signals = signals

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.is_last_train_iter(runner):
            return
        reason = self.signals.received
        if runner.world_size > 1:
            from mmengine.dist import all_gather_object

            reason = next((r for r in all_gather_object(reason) if r), None)
        if reason:
            name = f"iter_{runner.iter + 1}.pth"
            runner.save_checkpoint(runner.work_dir, name, save_optimizer=True, save_param_scheduler=True,
                                   by_epoch=False)
            path = os.path.join(runner.work_dir, name)
            if is_main_process():
                with open(os.path.join(runner.work_dir, "last_checkpoint"), "w") as f:
                    f.write(path)
            barrier()  # every process leaves once the file is written
            raise StopTraining(reason, runner.iter + 1, path)
