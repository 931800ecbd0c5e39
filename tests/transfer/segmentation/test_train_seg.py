"""tools/train_seg.py end to end on a tiny UperNet and the session's small toy split: converted weights -> train
-> metrics.json / log.jsonl -> --resume -> --eval-only, and the one-line errors of the command-line contract."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from asl.checkpoint import save_atomic
from transfer.segmentation import engine as seg_train
from transfer.segmentation.checkpoint import safe_torch_load
from transfer.segmentation.hooks import StopOnSignalHook

from .conftest import REPO, TINY_CONFIG

_spec = importlib.util.spec_from_file_location("train_seg_tool", os.path.join(REPO, "tools", "train_seg.py"))
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)
VITB = os.path.join(REPO, "configs", "ade20k_vitb_upernet.py")
TOY = os.path.join(REPO, "configs", "segmentation", "upernet_toy_1xb8_toyscenes.py")


def run_tool(*argv):
    tool.main([str(a) for a in argv])


def user_error(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(*argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and err and err[-1].startswith("error: "), err
    return err[-1]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def state_dict(path):
    return safe_torch_load(path)["state_dict"]


def test_train_from_converted_weights_then_resume_an_interrupted_run_exactly(tmp_path, toy_root, tiny_ckpts):
    _, mmseg_file, _ = tiny_ckpts
    ade = ["--data-path", toy_root / "ade"]
    run = tmp_path / "run"
    run_tool(TINY_CONFIG, *ade, "--work-dir", run, "--pretrained", mmseg_file, "--init-method", "asl",
             "train_cfg.max_iters=4")  # checkpoints at 2 and 4, validation at 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stage"] == "segmentation" and metrics["dataset"] == "toy_scenes"
    assert metrics["init"] == {"method": "asl", "checkpoint": str(mmseg_file.resolve())}
    assert metrics["model"] == "vit_test_tiny" and metrics["iterations"] == 4
    assert set(metrics["metrics"]) == {"mIoU", "mAcc", "aAcc"}
    assert all(0 <= v <= 100 for v in metrics["metrics"].values())
    assert metrics["epochs"] == pytest.approx(4 * 2 / 24, abs=1e-3) and os.path.exists(metrics["config"])
    log = read_jsonl(run / "log.jsonl")
    assert [r["iter"] for r in log if r["mode"] == "train"] == [1, 2, 3, 4]
    assert log[-1]["mode"] == "val" and log[-1]["mIoU"] == metrics["metrics"]["mIoU"]
    assert "loss" in log[0] and "lr" in log[0]
    # the converted weights were loaded: block 0 of the backbone moved only by 4 small steps
    start = torch.load(mmseg_file, weights_only=True)["state_dict"]["layers.0.attn.qkv.weight"]
    assert (state_dict(run / "iter_4.pth")["backbone.layers.0.attn.qkv.weight"] - start).abs().max() < 1e-2

    # a run "interrupted" after its iteration-2 checkpoint, continued with --resume, ends where the whole run did
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(run / "iter_2.pth", crashed / "iter_2.pth")
    shutil.copy(run / "init.json", crashed / "init.json")
    (crashed / "last_checkpoint").write_text(str(crashed / "iter_2.pth"))
    run_tool(TINY_CONFIG, *ade, "--work-dir", crashed, "--resume", "train_cfg.max_iters=4")
    resumed = json.loads((crashed / "metrics.json").read_text())
    assert resumed["iterations"] == 4 and resumed["init"] == metrics["init"]
    assert [r["iter"] for r in read_jsonl(crashed / "log.jsonl") if r["mode"] == "train"] == [3, 4]
    whole, continued = state_dict(run / "iter_4.pth"), state_dict(crashed / "iter_4.pth")
    assert whole.keys() == continued.keys()
    for key in whole:
        assert torch.allclose(whole[key].float(), continued[key].float(), atol=1e-6), key
    assert resumed["metrics"] == metrics["metrics"]
    # wall time covers the piece before the interruption (carried in iter_2.pth) and the resumed piece
    before = torch.load(crashed / "iter_2.pth", weights_only=False)["meta"]["asl_elapsed_s"]
    assert resumed["wall_time_s"] >= round(before, 1) > 0
    assert read_jsonl(crashed / "log.jsonl")[0]["elapsed_s"] > before

    # --eval-only on the final checkpoint reproduces the last validation, strictly loaded
    run_tool(TINY_CONFIG, *ade, "--work-dir", tmp_path / "eval", "--eval-only", run / "iter_4.pth")
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["eval_only"] and evaluated["iterations"] == 4 and evaluated["init"]["method"] == "asl"
    assert evaluated["metrics"] == metrics["metrics"]


def test_eval_only_refuses_a_backbone_only_file(capsys, tmp_path, toy_root, tiny_ckpts):
    message = user_error(capsys, TINY_CONFIG, "--work-dir", tmp_path, "--data-path", toy_root / "ade",
                         "--eval-only", tiny_ckpts[1])
    assert "does not fit the config's model" in message and "--pretrained" in message


def test_init_method_is_read_from_the_converted_file(tiny_ckpts, toy_root, tmp_path):
    args = tool.parse_args([TINY_CONFIG, "--init", str(tiny_ckpts[1]), "--data-path", str(toy_root / "ade"),
                                 "--output-dir", str(tmp_path)])
    cfg = seg_train.prepare(args)
    assert cfg.asl_init["method"] == "asl" and cfg.model.backbone.init_cfg.checkpoint == str(tiny_ckpts[1])
    bare = tmp_path / "bare.pth"  # a converted file without tools/convert_ckpt.py's meta
    save_atomic({"state_dict": torch.load(tiny_ckpts[1], weights_only=True)["state_dict"]}, bare)
    args.init = str(bare)
    assert seg_train.prepare(args).asl_init["method"] == "pretrained"
    args.init = None
    assert seg_train.prepare(args).asl_init == {"method": "random", "checkpoint": None}


def test_a_new_iteration_budget_moves_the_schedule(toy_root, tmp_path, capsys):
    for override in ("train_cfg.max_iters=300", "max_iters=300"):
        args = tool.build_parser().parse_intermixed_args(
            [TOY, override, "--data-path", str(toy_root / "ade"), "--work-dir", str(tmp_path)])
        cfg = seg_train.prepare(args)
        assert cfg.train_cfg.max_iters == 300 and cfg.train_cfg.val_interval == 300
        assert [s.end for s in cfg.param_scheduler] == [50, 300]
    capsys.readouterr()
    args = tool.build_parser().parse_intermixed_args(  # shorter than the warm-up: the decay would never start
        [TOY, "train_cfg.max_iters=40", "--data-path", str(toy_root / "ade"), "--work-dir", str(tmp_path)])
    cfg = seg_train.prepare(args)
    assert [(s.type, s.begin, s.end) for s in cfg.param_scheduler] == [("LinearLR", 0, 50)]
    assert "note: max_iters=40 ends before 1 lr schedule(s) would start; they are left out" in capsys.readouterr().out


def test_user_mistakes_are_one_line_errors(capsys, monkeypatch, tmp_path, toy_root, tiny_ckpts):
    monkeypatch.setenv("ASL_DATASETS", str(tmp_path / "empty"))
    message = user_error(capsys, VITB, "--work-dir", tmp_path / "w")
    assert "ADEChallengeData2016/images/training does not exist" in message and "download" in message
    ade = ["--data-path", toy_root / "ade", "--work-dir", tmp_path / "w"]
    assert "do not exist" in user_error(capsys, TINY_CONFIG, *ade, "--pretrained", tmp_path / "none.pth")
    assert "config" in user_error(capsys, tmp_path / "nope.py")
    assert "not key=value" in user_error(capsys, TINY_CONFIG, *ade, "max_iters")
    assert "does not exist" in user_error(capsys, TINY_CONFIG, *ade, "--eval-only", tmp_path / "x.pth")
    monkeypatch.setattr(seg_train, "_has_accelerator", lambda: False)
    assert "needs a GPU" in user_error(capsys, TINY_CONFIG, *ade, "--amp")
    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(\n")
    assert "cannot read config" in user_error(capsys, bad)


def test_wrong_weights_stop_the_tool_before_training(capsys, tmp_path, toy_root):
    torch.save({"model": {"head.weight": torch.zeros(2)}}, tmp_path / "notvit.pth")
    message = user_error(capsys, TINY_CONFIG, "--data-path", toy_root / "ade", "--work-dir", tmp_path / "w",
                         "--pretrained", tmp_path / "notvit.pth")
    assert "segmentation reads mmseg files: convert it once with python tools/convert_ckpt.py" in message
    assert not (tmp_path / "w" / "log.jsonl").exists()


def test_missing_toy_scenes_are_generated(monkeypatch, tmp_path):
    calls = []

    def fake_ensure(root):
        calls.append(root)
        for sub in ("images/training", "annotations/training", "images/validation", "annotations/validation"):
            os.makedirs(os.path.join(root, "ade", sub))
        for split in ("training", "validation"):
            for kind in ("images", "annotations"):
                open(os.path.join(root, "ade", kind, split, "0.png"), "w").close()

    monkeypatch.setattr("transfer.segmentation.data.ensure_toy_scenes", fake_ensure)
    monkeypatch.setenv("ASL_DATASETS", str(tmp_path))
    cfg = seg_train.load_config(TOY)
    seg_train.check_data_roots(cfg)
    assert calls == [str(tmp_path / "toy_scenes")]


def test_sigterm_saves_a_checkpoint_exits_75_and_resumes_to_the_same_weights(monkeypatch, tmp_path, toy_root):
    ade = ["--data-path", toy_root / "ade"]
    run_tool(TINY_CONFIG, *ade, "--work-dir", tmp_path / "whole", "train_cfg.max_iters=4")
    original = StopOnSignalHook.after_train_iter

    def signal_after_iteration_1(self, runner, *args, **kwargs):
        if runner.iter + 1 == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, runner, *args, **kwargs)

    monkeypatch.setattr(StopOnSignalHook, "after_train_iter", signal_after_iteration_1)
    stopped = tmp_path / "stopped"
    with pytest.raises(SystemExit) as stop:
        run_tool(TINY_CONFIG, *ade, "--work-dir", stopped, "train_cfg.max_iters=4")
    assert stop.value.code == 75
    assert (stopped / "last_checkpoint").read_text().strip() == str(stopped / "iter_1.pth")
    monkeypatch.setattr(StopOnSignalHook, "after_train_iter", original)
    # the first piece's time as its checkpoint records it, set to 1,000 s: metrics.json's wall time sums the pieces
    saved = torch.load(stopped / "iter_1.pth", map_location="cpu", weights_only=False)
    saved["meta"]["asl_elapsed_s"] = 1000.0
    torch.save(saved, stopped / "iter_1.pth")
    start = time.time()
    run_tool(TINY_CONFIG, *ade, "--work-dir", stopped, "--resume", "train_cfg.max_iters=4")
    whole, resumed = state_dict(tmp_path / "whole" / "iter_4.pth"), state_dict(stopped / "iter_4.pth")
    for key in whole:
        assert torch.allclose(whole[key].float(), resumed[key].float(), atol=1e-6), key
    wall = json.loads((stopped / "metrics.json").read_text())["wall_time_s"]
    assert 1000.0 < wall <= 1000.0 + time.time() - start + 0.1  # (metrics.json rounds to 0.1 s)


@pytest.mark.slow  # spawned workers import torch and mmseg anew: about 30 s
def test_sigusr1_to_every_process_with_loader_workers_saves_exits_75_and_resumes(monkeypatch, tmp_path, toy_root):
    """As SLURM signals a job step: SIGUSR1 to the main process and to each of its 2 loader workers, started by
    spawn (a start method mmengine's env_cfg may set; forked workers inherit the main process's handler, spawned
    ones must be given theirs). The workers must leave it to the main process (a worker it killed crashes the
    loader), the run exits 75 at iteration 2, and the resumed run ends at the uninterrupted run's weights."""
    import multiprocessing

    ade = ["--data-path", toy_root / "ade"]
    workers = ("train_dataloader.num_workers=2", "env_cfg.mp_cfg.mp_start_method=spawn")
    run_tool(TINY_CONFIG, *ade, "--work-dir", tmp_path / "whole", "train_cfg.max_iters=4", *workers)
    original = StopOnSignalHook.after_train_iter
    signalled = []

    def signal_every_process_after_iteration_2(self, runner, *args, **kwargs):
        # after iteration 2 each of the 2 workers has delivered a batch, so both have run their worker_init_fn: a
        # spawned worker still starting up has no guard yet (it is a fresh interpreter)
        if runner.iter + 1 == 2:
            signalled.extend(child.pid for child in multiprocessing.active_children())
            for pid in (*signalled, os.getpid()):
                os.kill(pid, signal.SIGUSR1)
        return original(self, runner, *args, **kwargs)

    monkeypatch.setattr(StopOnSignalHook, "after_train_iter", signal_every_process_after_iteration_2)
    stopped = tmp_path / "stopped"
    with pytest.raises(SystemExit) as stop:
        run_tool(TINY_CONFIG, *ade, "--work-dir", stopped, "train_cfg.max_iters=4", *workers)
    assert stop.value.code == 75 and len(signalled) == 2
    assert (stopped / "last_checkpoint").read_text().strip() == str(stopped / "iter_2.pth")
    monkeypatch.setattr(StopOnSignalHook, "after_train_iter", original)
    run_tool(TINY_CONFIG, *ade, "--work-dir", stopped, "--resume", "train_cfg.max_iters=4", *workers)
    whole, resumed = state_dict(tmp_path / "whole" / "iter_4.pth"), state_dict(stopped / "iter_4.pth")
    for key in whole:
        assert torch.allclose(whole[key].float(), resumed[key].float(), atol=1e-6), key


def test_used_work_dir_changed_resume_and_another_process_count_are_refused(capsys, tmp_path, toy_root):
    ade = ["--data-path", toy_root / "ade"]
    run = tmp_path / "run"
    run_tool(TINY_CONFIG, *ade, "--work-dir", run, "train_cfg.max_iters=2")
    before = (run / "iter_2.pth").read_bytes()
    message = user_error(capsys, TINY_CONFIG, *ade, "--work-dir", run, "train_cfg.max_iters=2")
    assert "already holds a run" in message and "--resume" in message and "--force" in message
    assert (run / "iter_2.pth").read_bytes() == before
    message = user_error(capsys, TINY_CONFIG, *ade, "--work-dir", run, "--resume", "train_cfg.max_iters=2",
                         "optim_wrapper.optimizer.lr=0.5")
    assert "optim_wrapper.optimizer.lr" in message
    # a checkpoint written by 2 processes, resumed by one: refused before any iteration, the run left as it was
    saved = torch.load(run / "iter_2.pth", map_location="cpu", weights_only=False)
    assert saved["meta"]["world_size"] == 1
    saved["meta"]["world_size"] = 2
    torch.save(saved, run / "iter_2.pth")
    before = (run / "iter_2.pth").read_bytes(), (run / "metrics.json").read_bytes()
    message = user_error(capsys, TINY_CONFIG, *ade, "--work-dir", run, "--resume", "train_cfg.max_iters=2")
    assert message == (f"error: --resume: {run / 'iter_2.pth'} was written by 2 processes, this launch has 1; "
                       "resume with the same number of processes")
    assert ((run / "iter_2.pth").read_bytes(), (run / "metrics.json").read_bytes()) == before



@pytest.mark.slow  # a process of its own, as a user runs it (mmengine keeps its visualizer per process and second)
def test_force_starts_over_and_keeps_the_initial_weights(tmp_path, toy_root, tiny_ckpts):
    """docs/cluster.md: --force removes the earlier run's checkpoints; the initial weights inside the run directory
    stay."""
    ade, run = ["--data-path", str(toy_root / "ade")], tmp_path / "run"
    run_tool(TINY_CONFIG, *ade, "--work-dir", run, "train_cfg.max_iters=2")
    init = run / "encoder_mmseg.pth"
    shutil.copy(tiny_ckpts[1], init)
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "train_seg.py"), str(TINY_CONFIG), *ade,
                    "--work-dir", str(run), "--force", "--init", str(init), "train_cfg.max_iters=1"], check=True,
                   capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert not (run / "iter_2.pth").exists() and (run / "iter_1.pth").exists()
    assert init.read_bytes() == tiny_ckpts[1].read_bytes()
    assert json.loads((run / "metrics.json").read_text())["iterations"] == 1

@pytest.mark.parametrize("override, expected", [
    ("optim_wrapper.optimizer.lrr=1", "has no 'lrr' (did you mean 'lr'?)"),
    ("max_iter=5", "has no 'max_iter' (did you mean 'max_iters'?)"),
    ("train_dataloader.batch_size=1", "BatchNorm needs at least 2 images per process"),
    ("train_dataloader.dataset.img_suffix=.webp", "holds no .webp images (it has .png): set"),
])
def test_bad_overrides_are_one_line_errors(capsys, tmp_path, toy_root, override, expected):
    message = user_error(capsys, TINY_CONFIG, "--data-path", toy_root / "ade", "--output-dir", tmp_path, override)
    assert expected in message


def test_cfg_options_are_overrides_too(tmp_path, toy_root, capsys):
    """docs/segmentation.md: mmengine's --cfg-options (lists as key=[a,b]) change the config as key=value pairs do;
    an unknown key there is one line too."""
    args = tool.parse_args([TINY_CONFIG, "--data-path", str(toy_root / "ade"), "--output-dir", str(tmp_path),
                            "--cfg-options", "train_cfg.max_iters=3", "model.decode_head.in_index=[0,1,2,3]"])
    cfg = seg_train.prepare(args)
    assert cfg.train_cfg.max_iters == 3 and list(cfg.model.decode_head.in_index) == [0, 1, 2, 3]
    message = user_error(capsys, TINY_CONFIG, "--data-path", toy_root / "ade", "--output-dir", tmp_path,
                         "--cfg-options", "train_cfg.max_iter=3")
    assert "has no 'max_iter' (did you mean 'max_iters'?)" in message


def test_known_override_of_a_registered_type_is_accepted(tmp_path, toy_root):
    args = tool.parse_args([TINY_CONFIG, "--data-path", str(toy_root / "ade"), "--output-dir", str(tmp_path),
                                 "train_dataloader.dataset.indices=4", "optim_wrapper.optimizer.eps=1e-6"])
    cfg = seg_train.prepare(args)
    assert cfg.train_dataloader.dataset.indices == 4 and cfg.optim_wrapper.optimizer.eps == 1e-6


def test_no_workers_turns_persistent_workers_off(tmp_path, toy_root):
    args = tool.parse_args([TOY, "--data-path", str(toy_root / "ade"), "--output-dir", str(tmp_path),
                                 "train_dataloader.num_workers=0"])
    cfg = seg_train.prepare(args)
    assert cfg.train_dataloader.persistent_workers is False  # PyTorch refuses persistent workers without workers
    assert cfg.val_dataloader.persistent_workers is True and cfg.val_dataloader.num_workers == 1


def test_a_run_with_persistent_loader_workers_exits(tmp_path, toy_root):
    """The toy config's loaders keep one persistent worker each: the run must end (a worker that ignored the
    SIGTERM its parent ends it with at exit hung the process after 'training done')."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train_seg.py"), TOY, "--data-path",
                          str(toy_root / "ade"), "--output-dir", str(tmp_path), "train_cfg.max_iters=2",
                          "train_cfg.val_interval=2", "train_dataloader.dataset.indices=4",
                          "val_dataloader.dataset.indices=2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["iterations"] == 2
