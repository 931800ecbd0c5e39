"""Detection with two gloo processes (`--num-gpus 2` on a CPU: detectron2's launch): a run stopped at its time
limit after one iteration and resumed goes on at the next iteration in both processes and ends with one
metrics.json. (Resumed detection is not bit-identical to an uninterrupted run: the augmentations are reseeded per
start point, docs/detection.md.)"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from det_helpers import CONFIGS, FAST, REPO, TINY

from asl.checkpoint import read_checkpoint

TOY = os.path.join(CONFIGS, "detection", "mask_rcnn_vitdet_toy_1000it.py")
ITERS = 4


def run(small_root, out, *extra):
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_det.py"), TOY, "--num-gpus", "2", "--data-root",
           str(small_root), "--output-dir", str(out), *extra, *TINY, *FAST, f"train.max_iter={ITERS}",
           "train.checkpointer.period=1000", "dataloader.train.total_batch_size=4"]
    done = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_two_processes_train_stop_at_the_time_limit_and_resume(small_root, tmp_path):
    out = tmp_path / "run"
    # --time-limit-min 0: stop after the first iteration with a resumable checkpoint (exit 0, no metrics yet)
    log = run(small_root, out, "--time-limit-min", "0")
    assert "World size: 2" in log and "time limit of 0.0 min reached after iteration 0" in log
    assert (out / "last_checkpoint").read_text() == "model_0000000.pth" and not (out / "metrics.json").exists()
    log = run(small_root, out, "--resume")
    assert "resuming from" in log and "from sample 2 of each process's stream" in log  # 1 iteration x 4 / 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iterations"] == ITERS and "box_AP" in metrics["metrics"]
    assert read_checkpoint(out / "model_final.pth")["iteration"] == ITERS - 1
    steps = [r["iteration"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
             if "total_loss" in r]
    assert steps[0] == 0 and sorted(set(steps)) == list(range(ITERS))


@pytest.mark.slow  # a minute: two detectron2 workers started, signalled and saved
def test_a_stop_signal_to_the_launching_tool_saves_and_exits_75(small_root, tmp_path):
    """SIGTERM to train_det.py (the process SLURM signals; detectron2's launch spawned the two workers): the
    workers save the iteration they reached and the tool passes their status 75 (requeue me) on."""
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_det.py"), TOY, "--num-gpus", "2", "--data-root",
           str(small_root), "--output-dir", str(out), *TINY, *FAST, "train.max_iter=10000",
           "train.checkpointer.period=100000", "dataloader.train.total_batch_size=4"]
    console = tmp_path / "console.txt"
    with open(console, "w") as sink:
        tool = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=sink, stderr=subprocess.STDOUT,
                                cwd=REPO)
        deadline = time.time() + 300
        while " iter: 2 " not in console.read_text() and tool.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        tool.send_signal(signal.SIGTERM)
        tool.wait(timeout=300)
    output = console.read_text()
    assert tool.returncode == 75, output[-3000:]
    saved = (out / "last_checkpoint").read_text()
    assert read_checkpoint(out / saved)["iteration"] >= 2 and not (out / "metrics.json").exists()
    assert "preempted" in output
