"""Segmentation with two gloo processes (as two SLURM tasks of one step start it): one group, one writer, and a run
stopped by SIGTERM mid-run and resumed ends with the weights of an uninterrupted two-process run."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from transfer.segmentation.checkpoint import safe_torch_load

from .conftest import REPO, TINY_CONFIG

TOOL = os.path.join(REPO, "tools", "train_seg.py")
ITERS = 40


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(work_dir, ade, *extra):
    port = free_port()
    cmd = [sys.executable, TOOL, TINY_CONFIG, "--data-path", str(ade), "--work-dir", str(work_dir), *extra,
           f"train_cfg.max_iters={ITERS}", f"train_cfg.val_interval={ITERS}", f"param_scheduler.0.end={ITERS}",
           "default_hooks.checkpoint.interval=1000"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
               LOCAL_WORLD_SIZE="2")
    return [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=REPO) for r in (0, 1)]


def finish(procs, codes=(0,)):
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode in codes, out[-2000:] + err[-3000:]
    return outs


def logged_iterations(work_dir):
    path = work_dir / "log.jsonl"
    if not path.exists():
        return []
    return [r["iter"] for r in map(json.loads, path.read_text().splitlines()) if "loss" in r]


@pytest.mark.slow  # half a minute: two mmengine processes started twice
def test_two_processes_train_and_resume_after_sigterm_to_the_same_weights(tmp_path, toy_root):
    ade = toy_root / "ade"
    whole = tmp_path / "whole"
    finish(start(whole, ade))
    record = json.loads((whole / "metrics.json").read_text())
    assert record["iterations"] == ITERS and "mIoU" in record["metrics"]
    assert sorted(os.listdir(whole)).count("metrics.json") == 1  # one writer

    stopped = tmp_path / "stopped"
    procs = start(stopped, ade)
    deadline = time.time() + 300
    while len(logged_iterations(stopped)) < 3 and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    for p in procs:  # what SLURM does to every task of a preempted step
        p.send_signal(signal.SIGTERM)
    finish(procs, codes=(75,))
    saved = (stopped / "last_checkpoint").read_text().strip()
    stopped_at = safe_torch_load(saved)["meta"]["iter"]
    assert 3 <= stopped_at < ITERS, saved
    finish(start(stopped, ade, "--resume"))
    final = [safe_torch_load(path / f"iter_{ITERS}.pth")["state_dict"] for path in (whole, stopped)]
    for key in final[0]:
        assert torch.allclose(final[0][key].float(), final[1][key].float(), atol=1e-6), key
