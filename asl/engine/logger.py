"""Progress lines with rate and ETA, JSON-lines metrics (log.jsonl) and tensorboard events for a run directory.
Only rank 0 writes."""
import json
import os
import resource
import sys
import time

import torch


def peak_memory_gib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # kB on Linux


def peak_gpu_memory_gib():
    """The largest GPU memory this process allocated (torch's allocator), in GiB; None without a GPU."""
    return round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if torch.cuda.is_available() else None


def format_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class RunLogger:
    def __init__(self, run_dir: str, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.jsonl = open(os.path.join(run_dir, "log.jsonl"), "a") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(os.path.join(run_dir, "tensorboard"))

    def log(self, step: int, record: dict, line: str = None):
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, "time": time.time(), **record}) + "\n")
        self.jsonl.flush()
        if self.tb:
            for key, value in record.items():
                if isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, step)
        if line:
            print(line, file=sys.stdout, flush=True)

    def close(self):
        if self.jsonl:
            self.jsonl.close()
        if self.tb:
            self.tb.close()
