"""tools/slurm/requeue.sh (the body of the sbatch examples) with stand-ins for srun and scontrol: a stop signal to
the whole job makes the tool checkpoint and exit 75, the batch shell survives it and requeues the job."""
import os
import signal
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, 'depth': 1, "
         "'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8", "runtime.tensorboard=False",
         "runtime.log_every=1"]


def fake_slurm(bin_dir, calls):
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    for name in ("srun", "scontrol"):
        (bin_dir / name).chmod(0o755)


def test_a_signalled_job_checkpoints_exits_75_and_is_requeued(toy_root, tmp_path):
    calls = tmp_path / "scontrol_calls"
    fake_slurm(tmp_path / "bin", calls)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", SLURM_JOB_ID="4242",
               SLURM_SUBMIT_DIR=REPO, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    run_dir = tmp_path / "run"
    cmd = ["bash", os.path.join(REPO, "tools", "slurm", "requeue.sh"), "tools/pretrain.py", *MICRO,
           f"data.path={toy_root / 'unlabeled'}", "optim.epochs=20", "--output-dir", str(run_dir), "--resume", "auto"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = run_dir / "log.jsonl"
    while proc.poll() is None and not (log.exists() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGUSR1)  # as `#SBATCH --signal=USR1@180`: every process of the job
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]
    assert "requeueing job 4242" in out and calls.read_text().split() == ["requeue", "4242"]
    assert 3 <= torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)["iteration"] < 60
