"""The shared runtime: exact resume mid-epoch, preemption, the run-directory guard and the launch contract."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.engine.classification import run_classification
from asl.engine.launch import Launch, detect_launch, device_for, first_host
from asl.engine.pretrain import run_pretrain
from asl.engine.runtime import claim_run_dir, config_changes
from asl.signals import EXIT_PREEMPTED

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "pretrain.py")
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, 'depth': 1, "
         "'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8", "runtime.tensorboard=False",
         "runtime.log_every=1", "optim.warmup_epochs=1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)


def pretrain_cfg(toy_root, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", "pretrain", "toy_asl.py"))
    return apply_overrides(cfg, MICRO + [f"data.path={toy_root / 'unlabeled'}", *overrides])


def weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoints", "last.pth"), weights_only=True)["model"]


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ exact resume
def test_pretraining_resumed_mid_epoch_at_several_points_equals_an_uninterrupted_run(toy_root, tmp_path):
    """24 images, batch 8: 3 steps an epoch, 12 steps; pieces end at steps 2, 4 and 7 (all mid-epoch)."""
    ref = run_pretrain(pretrain_cfg(toy_root, "optim.epochs=4"), str(tmp_path / "ref"))
    run_dir = str(tmp_path / "pieces")
    for piece, stop in enumerate((2, 4, 7, None)):
        cfg = pretrain_cfg(toy_root, "optim.epochs=4", f"runtime.max_iters={stop}")
        out = run_pretrain(cfg, run_dir, resume="auto" if piece else None)
        assert out["iterations"] == (stop or 12)
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6
    assert out["metrics"]["loss"] == pytest.approx(ref["metrics"]["loss"], abs=1e-6)
    steps = [json.loads(line)["step"] for line in open(os.path.join(run_dir, "log.jsonl"))]
    assert steps == list(range(1, 13))  # one record per step: no piece repeated or lost one


def test_pretraining_resumed_at_epoch_boundaries_equals_an_uninterrupted_run_and_keeps_every_nth_epoch(
        toy_root, tmp_path, capsys):
    """Pieces that end exactly where an epoch ends (steps 3 and 6 of 3-step epochs), the resume starting the next
    epoch's order; epoch_0002.pth and epoch_0004.pth are kept (keep_every_epochs=2) by both runs, equal."""
    common = ("optim.epochs=4", "runtime.keep_every_epochs=2")
    run_pretrain(pretrain_cfg(toy_root, *common), str(tmp_path / "ref"))
    run_dir = str(tmp_path / "pieces")
    for piece, stop in enumerate((3, 6, None)):
        out = run_pretrain(pretrain_cfg(toy_root, *common, f"runtime.max_iters={stop}"), run_dir,
                           resume="auto" if piece else None)
        assert out["iterations"] == (stop or 12)
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6
    for epoch in (2, 4):
        kept = [torch.load(os.path.join(d, "checkpoints", f"epoch_{epoch:04d}.pth"), weights_only=True)
                for d in (tmp_path / "ref", run_dir)]
        assert kept[0]["iteration"] == kept[1]["iteration"] == 3 * epoch
        assert max_difference(kept[0]["model"], kept[1]["model"]) <= 1e-6
    assert not os.path.exists(os.path.join(run_dir, "checkpoints", "epoch_0001.pth"))
    progress = [line for line in capsys.readouterr().out.splitlines() if " eta " in line]
    assert progress and all(" img/s " in line for line in progress)  # every progress line: rate and time left
    records = [json.loads(line) for line in open(os.path.join(run_dir, "log.jsonl")) if '"loss"' in line]
    assert records and all(r["img_per_s"] > 0 and r["mem_gib"] >= 0 and r["lr"] >= 0 for r in records)
    run_pretrain(pretrain_cfg(toy_root, "optim.epochs=2", "runtime.keep_every_epochs=0"), str(tmp_path / "none"))
    assert sorted(os.listdir(tmp_path / "none" / "checkpoints")) == ["last.pth"]  # 0 keeps no epoch file


def test_finetuning_resumed_mid_epoch_equals_an_uninterrupted_run(toy_root, tmp_path, capsys):
    """Mixup, RandAugment, random erasing and drop path all draw random numbers; 2 resumes mid-epoch."""
    common = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0", "runtime.tensorboard=False",
              f"data.path={toy_root}", "optim.batch_size=4", "optim.epochs=2", "optim.warmup_epochs=1"]
    cfg = lambda *extra: apply_overrides(load_config(os.path.join(REPO, "configs", "finetune", "toy.py")),  # noqa
                                         common + list(extra))
    ref = run_classification(cfg("runtime.log_every=1"), str(tmp_path / "ref"), "finetune")
    progress = [line for line in capsys.readouterr().out.splitlines() if " img/s " in line]
    assert len(progress) == ref["iterations"] and all(re.search(r" eta \d", line) for line in progress)  # rate, ETA
    per_epoch = ref["iterations"] // 2
    assert per_epoch >= 4
    run_dir = str(tmp_path / "pieces")
    for piece, stop in enumerate((per_epoch // 2, per_epoch + 1, None)):
        out = run_classification(cfg(f"runtime.max_iters={stop}"), run_dir, "finetune",
                                 resume="auto" if piece else None)
    assert out["iterations"] == ref["iterations"]
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6
    assert out["metrics"] == ref["metrics"]
    # the wall time sums the pieces: the pieces' time as the last checkpoint records it, set to 1,000 s, resumed
    last = os.path.join(run_dir, "checkpoints", "last.pth")
    torch.save({**torch.load(last, weights_only=True), "elapsed_s": 1000.0}, last)
    start = time.time()
    again = run_classification(cfg(), run_dir, "finetune", resume="auto")
    assert 1000.0 < again["wall_time_s"] <= 1000.0 + time.time() - start


def test_resuming_a_finished_classification_run_keeps_its_metrics_and_time(toy_root, tmp_path):
    cfg = apply_overrides(load_config(os.path.join(REPO, "configs", "linprobe", "toy.py")),
                          ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0",
                           "runtime.tensorboard=False", f"data.path={toy_root}", "optim.batch_size=8",
                           "optim.epochs=2"])
    first = run_classification(cfg, str(tmp_path), "linprobe")
    again = run_classification(cfg, str(tmp_path), "linprobe", resume="auto")
    assert again["metrics"] == first["metrics"] and set(again["metrics"]) >= {"top1", "best_top1"}
    assert again["wall_time_s"] >= first["wall_time_s"] > 0


# ------------------------------------------------------------------------------------------------- preemption
def test_sigterm_saves_at_a_step_boundary_exits_75_and_the_resumed_run_is_exact(toy_root, tmp_path):
    # one epoch of 24 steps (batch 1): wherever the signal lands, the save is mid-epoch
    common = [sys.executable, TOOL, *MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=1",
              "optim.batch_size=1"]
    subprocess.run([*common, "--output-dir", str(tmp_path / "ref")], check=True, env=ENV, capture_output=True)
    run_dir = tmp_path / "preempted"
    proc = subprocess.Popen([*common, "--output-dir", str(run_dir)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = run_dir / "log.jsonl"
    while proc.poll() is None and not (log.exists() and len(log.read_text().splitlines()) >= 4):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err[-2000:]
    assert "SIGTERM received: saved iteration" in err and "Traceback" not in err
    saved = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=True)
    assert 4 <= saved["iteration"] < 24  # mid-epoch
    assert not (run_dir / "metrics.json").exists()
    out = subprocess.run([*common, "--output-dir", str(run_dir), "--resume", "auto"], env=ENV, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert max_difference(weights(tmp_path / "ref"), weights(run_dir)) <= 1e-6


def test_a_single_process_stops_at_the_step_the_signal_arrives_in_whatever_stop_check_every(toy_root, tmp_path,
                                                                                             monkeypatch):
    """docs/cluster.md: one process checks the stop signal at every step; runtime.stop_check_every (here 10)
    only spaces out the agreement of several. SIGUSR1 arrives during step 3 of 12: the run saves step 3."""
    from asl.engine.runtime import Session
    from asl.signals import Preempted

    check = Session.stop_requested

    def signal_in_step_3(session, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)
        return check(session, step)

    monkeypatch.setattr(Session, "stop_requested", signal_in_step_3)
    with pytest.raises(Preempted):
        run_pretrain(pretrain_cfg(toy_root, "optim.epochs=4", "runtime.stop_check_every=10"), str(tmp_path / "run"))
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)["iteration"] == 3


# ---------------------------------------------------------------------------------------- run-directory guard
def test_a_new_run_into_a_used_directory_refuses_and_leaves_the_checkpoint_alone(toy_root, tmp_path):
    run_pretrain(pretrain_cfg(toy_root, "optim.epochs=1", "runtime.tensorboard=True"), str(tmp_path))
    before = (tmp_path / "checkpoints" / "last.pth").read_bytes()
    out = subprocess.run([sys.executable, TOOL, *MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=2",
                          "--output-dir", str(tmp_path)], env=ENV, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "--resume auto" in out.stderr and "--force" in out.stderr
    assert (tmp_path / "checkpoints" / "last.pth").read_bytes() == before
    events = sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    forced = run_pretrain(pretrain_cfg(toy_root, "optim.epochs=2", "runtime.tensorboard=True"), str(tmp_path),
                          force=True)
    assert forced["iterations"] == 6
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 6  # the old run's records are gone
    (written,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")  # tensorboard on: this run's events only
    assert written not in events and written.stat().st_size > 100


def test_resume_with_a_changed_config_names_the_key_and_allows_the_listed_ones(toy_root, tmp_path):
    run_pretrain(pretrain_cfg(toy_root, "optim.epochs=2", "runtime.max_iters=2"), str(tmp_path))
    with pytest.raises(UserError, match=r"differs from the checkpoint's in optim\.lr\b"):
        run_pretrain(pretrain_cfg(toy_root, "optim.epochs=2", "optim.lr=0.5"), str(tmp_path), resume="auto")
    # workers, logging, the iteration cap and the data's place (a job's copy on node-local disk) may change
    local = tmp_path.parent / f"{tmp_path.name}_local_copy"
    shutil.copytree(toy_root / "unlabeled", local)
    done = run_pretrain(pretrain_cfg(toy_root, "optim.epochs=2", "runtime.log_every=2", f"data.path={local}"),
                        str(tmp_path), resume="auto")
    assert done["iterations"] == 6
    whole = tmp_path.parent / f"{tmp_path.name}_whole"
    run_pretrain(pretrain_cfg(toy_root, "optim.epochs=2"), str(whole))
    assert max_difference(weights(tmp_path), weights(whole)) < 1e-6  # the same images, read from elsewhere


def test_config_changes_lists_changed_added_and_removed_keys():
    old = {"a": {"b": 1, "c": (1, 2)}, "runtime": {"log_every": 5}, "gone": 1}
    new = {"a": {"b": 2, "c": [1, 2]}, "runtime": {"log_every": 9}, "new": 0}
    assert config_changes(old, new) == ["a.b", "gone", "new"]


def test_a_checkpoint_from_before_crop_scale_resumes_only_if_the_key_says_what_it_did():
    """data.crop_scale came later: a run without it cropped as MAE does (0.2-1)."""
    saved = {"data": {"transform": "mae"}}
    assert config_changes(saved, {"data": {"transform": "mae", "crop_scale": (0.2, 1.0)}}) == []
    assert config_changes(saved, {"data": {"transform": "mae", "crop_scale": (1.0, 1.0)}}) == ["data.crop_scale"]


# ------------------------------------------------------------------------------------------------ the launch
@pytest.mark.parametrize("nodelist, host", [("gpu[03-05,07],cpu1", "gpu03"), ("node7", "node7"),
                                            ("a-1,b", "a-1"), ("x[1]", "x1")])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_detect_launch():
    assert detect_launch({}) == Launch("single")
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "n0",
                "MASTER_PORT": "1234"}
    assert detect_launch(torchrun) == Launch("torchrun", 3, 8, 3, 4, "n0", 1234)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_ID": "0",
             "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[1-2]", "SLURM_STEP_NUM_NODES": "2",
             "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_JOB_ID": "123456"}
    assert detect_launch(slurm) == Launch("slurm", 5, 8, 1, 4, "gpu1", 20000 + 123456 % 20000)
    # the batch script itself (no srun step) and a step of one task are one plain process
    assert detect_launch({k: v for k, v in slurm.items() if "STEP" not in k}) == Launch("single")
    assert detect_launch({**slurm, "SLURM_STEP_NUM_TASKS": "1"}) == Launch("single")
    assert detect_launch({**slurm, **torchrun}).source == "torchrun"  # torchrun inside an allocation



@pytest.mark.parametrize("visible, local_rank, device", [
    (None, 3, "cpu"),  # no GPU: the CPU, whatever the rank
    (8, 3, "cuda:3"),  # torchrun on an 8-GPU node: the local rank's GPU
    (8, 0, "cuda:0"),
    (1, 5, "cuda:0"),  # srun --gpus-per-task 1: each task sees one GPU, its own
])
def test_each_process_is_placed_on_its_local_rank_s_gpu(visible, local_rank, device, monkeypatch):
    """The placement rule of docs/cluster.md, with the GPU count simulated (this machine has none): torch is asked
    only how many GPUs this process sees."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible is not None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible or 0)
    assert device_for(Launch("torchrun", 8 + local_rank, 16, local_rank, 8)) == torch.device(device)


def test_a_local_rank_beyond_the_visible_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match="process 6 has local rank 2 but sees 2 GPUs; start at most one process per"):
        device_for(Launch("slurm", 6, 8, 2, 4))

def slurm_env(rank, world, port):
    return dict(ENV, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NTASKS=str(world),
                SLURM_STEP_NUM_TASKS=str(world), SLURM_STEP_ID="0", SLURM_NODELIST="localhost",
                MASTER_PORT=str(port), ASL_DIST_TIMEOUT="20")


def test_two_slurm_tasks_form_one_group_with_one_writer(toy_root, tmp_path):
    port = free_port()
    cmd = [sys.executable, TOOL, *MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=2",
           "--output-dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, env=slurm_env(r, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "2 process(es) on cpu, batch 16" in outs[0][0] and outs[1][0] == ""  # rank 1 prints nothing
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 2 * (24 // 2 // 8)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == metrics["iterations"]



@pytest.mark.slow
def test_a_stop_signal_to_one_of_two_processes_stops_both_at_one_step_and_the_resume_is_exact(toy_root, tmp_path):
    """SIGUSR1 to rank 1 only (a preemption that reaches one node first): both processes save the same step, a
    multiple of runtime.stop_check_every (its default with several processes: 10), exit 75, and the resumed pair
    ends at the uninterrupted pair's weights. 4 epochs of 12 steps (batch 1 per process)."""
    cmd = [sys.executable, TOOL, *MICRO, f"data.path={toy_root / 'unlabeled'}", "optim.epochs=4",
           "optim.batch_size=1"]

    def pair(run_dir, *args, signal_rank1_after_lines=None):
        port = free_port()
        procs = [subprocess.Popen([*cmd, "--output-dir", str(run_dir), *args], env=slurm_env(r, 2, port),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
        if signal_rank1_after_lines:
            log = run_dir / "log.jsonl"
            while procs[0].poll() is None and not (log.exists() and
                                                   len(log.read_text().splitlines()) >= signal_rank1_after_lines):
                time.sleep(0.01)
            procs[1].send_signal(signal.SIGUSR1)
        outs = [p.communicate(timeout=300) for p in procs]
        return [p.returncode for p in procs], outs[0][1][-2000:] + outs[1][1][-2000:]

    codes, err = pair(tmp_path / "ref")
    assert codes == [0, 0], err
    codes, err = pair(tmp_path / "stopped", signal_rank1_after_lines=2)
    assert codes == [EXIT_PREEMPTED, EXIT_PREEMPTED], err
    saved = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pth", weights_only=True)
    assert saved["iteration"] % 10 == 0 and 0 < saved["iteration"] < 48  # mid-epoch: epochs end at 12, 24, 36
    codes, err = pair(tmp_path / "stopped", "--resume", "auto")
    assert codes == [0, 0], err
    assert max_difference(weights(tmp_path / "ref"), weights(tmp_path / "stopped")) <= 1e-6

def test_one_of_two_slurm_tasks_alone_refuses_with_one_line(toy_root, tmp_path):
    env = dict(slurm_env(0, 2, free_port()), ASL_DIST_TIMEOUT="3")
    out = subprocess.run([sys.executable, TOOL, *MICRO, f"data.path={toy_root / 'unlabeled'}", "--output-dir",
                          str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.startswith("error: process 0 of 2 (slurm) could not join its group")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "checkpoints" / "last.pth").exists()


def test_the_guard_keeps_a_resumed_run_and_initial_weights(tmp_path):
    (tmp_path / "model_0000009.pth").write_bytes(b"a checkpoint of this run")
    (tmp_path / "init.pth").write_bytes(b"the weights the run starts from")
    (tmp_path / "log.jsonl").write_text("{}\n")
    claim_run_dir(str(tmp_path), holds_run=False, resume=True, force=False, main=True,
                  run_files=("model_*.pth", "log.jsonl"), resume_flag="--resume")
    assert (tmp_path / "model_0000009.pth").exists() and (tmp_path / "log.jsonl").exists()  # a resume deletes nothing
    (tmp_path / "model_init.pth").write_bytes(b"initial weights named like a checkpoint")
    claim_run_dir(str(tmp_path), holds_run=True, resume=False, force=True, main=True,
                  run_files=("model_*.pth", "log.jsonl", "init.pth"), resume_flag="--resume",
                  keep=[str(tmp_path / "model_init.pth"), str(tmp_path / "init.pth")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["init.pth", "model_init.pth"]
    with pytest.raises(UserError, match="give one of them"):
        claim_run_dir(str(tmp_path), False, True, True, True, (), "--resume")


def test_resume_before_the_first_checkpoint_keeps_kept_epoch_files(toy_root, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch_0100.pth").write_bytes(b"kept")
    (tmp_path / "log.jsonl").write_text('{"step": 3, "loss": 1.0}\n{"step": 4, "lo')  # torn by a kill
    run_pretrain(pretrain_cfg(toy_root, "optim.epochs=1"), str(tmp_path), resume="auto")
    assert (tmp_path / "checkpoints" / "epoch_0100.pth").read_bytes() == b"kept"
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # the earlier piece's records (and the torn line) dropped: nothing to resume from
