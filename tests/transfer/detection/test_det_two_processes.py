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


@pytest.mark.slow  # two detectron2 processes started as SLURM tasks, each with a loader worker, signalled, resumed
def test_two_slurm_tasks_join_one_group_and_sigusr1_to_every_process_of_the_step_saves_both_and_exits_75(
        small_root, tmp_path):
    """docs/cluster.md: under srun each process joins the group itself (no --num-gpus). SLURM's SIGUSR1 reaches
    every process of the step, loader workers included: the workers ignore it, both ranks save the iteration they
    agree on and exit 75, and the pair resumed from it finishes the run with one metrics.json."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out, iters = tmp_path / "run", 40
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_det.py"), TOY, "--data-root", str(small_root),
           "--output-dir", str(out), *TINY, *FAST, f"train.max_iter={iters}", "train.checkpointer.period=100000",
           "dataloader.train.total_batch_size=4", "dataloader.train.num_workers=1"]

    def task(rank, console, *extra):
        env = dict(os.environ, OMP_NUM_THREADS="1", SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
                   SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2", SLURM_STEP_ID="0", SLURM_NODELIST="localhost",
                   MASTER_PORT=str(port), ASL_DIST_TIMEOUT="120")
        # a session of its own: os.killpg then signals the task and its loader worker, as SLURM signals a step
        return subprocess.Popen([*cmd, *extra], env=env, stdout=console, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)

    consoles = [tmp_path / f"rank{r}.txt" for r in (0, 1)]
    sinks = [open(c, "w") for c in consoles]
    tasks = [task(r, sinks[r]) for r in (0, 1)]
    deadline = time.time() + 300
    while " iter: 2 " not in consoles[0].read_text() and all(t.poll() is None for t in tasks) and \
            time.time() < deadline:
        time.sleep(0.2)
    for t in tasks:
        os.killpg(t.pid, signal.SIGUSR1)
    codes = [t.wait(timeout=300) for t in tasks]
    logs = [c.read_text() for c in consoles]
    assert codes == [75, 75], logs[0][-3000:] + logs[1][-3000:]
    assert "World size: 2" in logs[0] and "preempted: SIGUSR1 received" in logs[0]
    assert not any("Traceback" in log or "DataLoader worker" in log for log in logs), logs
    saved = read_checkpoint(out / (out / "last_checkpoint").read_text())["iteration"]
    assert 2 <= saved < iters - 1 and not (out / "metrics.json").exists()
    for sink in sinks:
        sink.close()
    sinks = [open(c, "w") for c in consoles]
    tasks = [task(r, sinks[r], "--resume") for r in (0, 1)]
    codes = [t.wait(timeout=300) for t in tasks]
    logs = [c.read_text() for c in consoles]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for sink in sinks:
        sink.close()
    assert "resuming from" in logs[0] and json.loads((out / "metrics.json").read_text())["iterations"] == iters
