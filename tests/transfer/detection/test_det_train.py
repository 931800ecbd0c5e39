"""Training and evaluation through tools/train_det.py and transfer.detection.engine, a few iterations each:
strict, accounted loading of converted weights; metrics.json; resuming at the right iteration; clear errors."""
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from det_helpers import CONFIGS, FAST, REPO, TINY, load_tool
from detectron2.config import instantiate
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import HookBase

from asl.checkpoint import read_checkpoint, save_atomic
from asl.cli import UserError
from asl.convert import TARGET_INIT, unmatched_target_keys
from asl.signals import Preempted
from transfer.detection import engine
from transfer.detection.checkpoint import StrictDetectionCheckpointer
from transfer.detection.data import ResumableTrainingSampler, register_datasets

TOY = os.path.join(CONFIGS, "detection", "mask_rcnn_vitdet_toy_1000it.py")
TOOL = os.path.join(REPO, "tools", "train_det.py")


def toy_model(*overrides):
    cfg = engine.load_config(TOY, overrides)
    cfg.train.device = "cpu"
    return instantiate(cfg.model)


def test_converted_checkpoint_loads_strictly_and_every_key_is_accounted(toy_checkpoints):
    src, converted = toy_checkpoints
    model = toy_model()
    ckpt = StrictDetectionCheckpointer(model)
    ckpt.load(str(converted))
    weights = read_checkpoint(converted)["model"]
    assert ckpt.last_load["loaded"] == sorted(weights) and len(weights) == 2 + 1 + 4 * 12  # embeddings + 4 blocks
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    assert unmatched_target_keys("detectron2", ckpt.last_load["initialised"]) == []
    assert {p for p, _ in TARGET_INIT["detectron2"]} and any("rel_pos_h" in k for k in ckpt.last_load["initialised"])

    assert ckpt.last_load["method"] == "asl"  # recorded by tools/convert_ckpt.py

    # one conversion path: the pretraining checkpoint itself is refused with the command that converts it
    with pytest.raises(UserError, match=r"asl-pretrain checkpoint; detection reads detectron2 files: convert it once "
                                        r"with python tools/convert_ckpt.py .* --to detectron2"):
        StrictDetectionCheckpointer(toy_model()).load(str(src))


def test_incompatible_checkpoints_are_refused(toy_checkpoints, tmp_path):
    _, converted = toy_checkpoints
    weights = read_checkpoint(converted)["model"]
    cases = {
        "extra": ({**weights, "backbone.net.blocks.6.norm1.weight": torch.ones(192)}, r"blocks.6.norm1.weight, which"),
        "shape": ({**weights, "backbone.net.pos_embed": torch.zeros(1, 197, 192)},
                  r"pos_embed has shape \(1, 197, 192\).*pretrain_img_size"),
        "missing": ({k: v for k, v in weights.items() if "blocks.3.mlp" not in k}, r"lacks backbone.net.blocks.3.mlp"),
    }
    for name, (state, message) in cases.items():
        save_atomic({"model": state}, tmp_path / f"{name}.pth")
        with pytest.raises(UserError, match=message):
            StrictDetectionCheckpointer(toy_model()).load(str(tmp_path / f"{name}.pth"))


def test_toy_run_from_a_converted_checkpoint_writes_metrics_and_evaluates_again(small_root, toy_checkpoints,
                                                                                tmp_path):
    _, converted = toy_checkpoints
    out = tmp_path / "run"
    tool = load_tool("train_det")
    tool.main([TOY, "--data-root", str(small_root), "--output-dir", str(out), *FAST,
               f"train.init_checkpoint={converted}", "--init-method", "asl"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage"] == "detection" and metrics["dataset"] == "toy_scenes"
    assert metrics["init"] == {"method": "asl", "checkpoint": str(converted)}
    assert metrics["model"] == "vit_toy_patch8" and metrics["iterations"] == 2
    assert metrics["epochs"] == pytest.approx(2 * 4 / 8)
    for key in ("box_AP", "box_AP50", "box_AP75", "mask_AP", "mask_AP50", "mask_AP75"):
        assert 0.0 <= metrics["metrics"][key] <= 100.0, key
    for size in ("APs", "APm", "APl"):  # a size range without ground truth is left out, and said so
        key = f"box_{size}"
        assert 0.0 <= metrics["metrics"][key] <= 100.0 if key in metrics["metrics"] else \
            any(size in n for n in metrics["notes"]), key
    assert "box_APl" not in metrics["metrics"]  # no large objects in 64 px scenes
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in steps if "total_loss" in s] == [0, 1]
    assert (out / "model_final.pth").exists() and (out / "config.yaml").exists()
    assert os.listdir(out / "tensorboard")

    evaluated = tmp_path / "eval"
    tool.main([TOY, "--eval-only", "--data-root", str(small_root), "--output-dir", str(evaluated),
               f"train.init_checkpoint={out / 'model_final.pth'}", "dataloader.test.num_workers=0"])
    again = json.loads((evaluated / "metrics.json").read_text())
    assert again["metrics"] == metrics["metrics"] and again["iterations"] == 2 and again["init"] == metrics["init"]

    with pytest.raises(SystemExit) as exit_info:  # a backbone-only file cannot be evaluated
        tool.main([TOY, "--eval-only", "--data-root", str(small_root), "--output-dir", str(evaluated),
                   f"train.init_checkpoint={converted}"])
    assert exit_info.value.code == 2


class Crash(HookBase):
    """Kills the run (an exception, as a node failure would) before iteration `at` starts."""

    def __init__(self, at):
        self.at = at

    def before_step(self):
        if self.trainer.iter == self.at:
            raise KeyboardInterrupt(f"simulated crash at iteration {self.at}")


class Record(HookBase):
    def __init__(self):
        self.iterations, self.lrs = [], []

    def before_step(self):
        self.iterations.append(self.trainer.iter)
        self.lrs.append(self.trainer.optimizer.param_groups[-1]["lr"])


def test_interrupted_run_resumes_at_the_right_iteration(small_root, tmp_path):
    register_datasets(str(small_root))
    overrides = [*TINY, *FAST, "train.max_iter=5", "train.checkpointer.period=2", f"train.output_dir={tmp_path}"]

    def cfg():
        c = engine.load_config(TOY, overrides)
        engine.resolve_device(c)
        del c.dataloader.evaluator  # training only: evaluation is tested above
        return c

    with pytest.raises(KeyboardInterrupt):
        engine.do_train(cfg(), extra_hooks=[Crash(at=3)])
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"  # iterations 0 and 1 were saved
    saved = read_checkpoint(tmp_path / "model_0000001.pth")
    assert saved["iteration"] == 1 and saved["trainer"]["hooks"]["RunState"]["seed"] == 0  # train.seed

    # resume, and stop at once at the time limit: a resumable checkpoint of the iteration just finished; the
    # augmentations are reseeded with seed + start iteration (+ rank), not replayed from the first piece's start
    seeds = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "seed_all_rng", seeds.append)
        first = Record()
        assert engine.do_train(cfg(), resume=True, extra_hooks=[first], time_limit_min=0) is None
    assert seeds == [0 + 2 + 0]
    assert first.iterations == [2] and (tmp_path / "last_checkpoint").read_text() == "model_0000002.pth"
    second = Record()
    engine.do_train(cfg(), resume=True, extra_hooks=[second])
    assert second.iterations == [3, 4]
    c = cfg()
    schedule, lr = instantiate(c.lr_multiplier), c.optimizer.lr  # the last group (heads) runs at the full lr
    assert first.lrs + second.lrs == pytest.approx([lr * schedule(i / 5) for i in (2, 3, 4)])  # schedule goes on
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [s["iteration"] for s in logged if "total_loss" in s]
    # 0, 1, 2 done before the crash (2 came after the last checkpoint: it is redone), then 2, then 3 and 4;
    # detectron2's writer flushes once more whenever a run ends early
    assert steps[:3] == [0, 1, 2] and steps[-2:] == [3, 4] and 2 in steps[3:-2]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    final = read_checkpoint(tmp_path / "model_final.pth")
    assert final["iteration"] == 4 and final["trainer"]["hooks"]["RunState"]["world_size"] == 1

    # a checkpoint written by 2 processes, resumed by one: refused, nothing trained
    final["trainer"]["hooks"]["RunState"]["world_size"] = 2
    torch.save(final, tmp_path / "model_final.pth")
    third = Record()
    with pytest.raises(UserError, match=r"^--resume: .*model_final\.pth was written by 2 processes, this launch has 1"):
        engine.do_train(cfg(), resume=True, extra_hooks=[third])
    assert third.iterations == []


def test_resumable_sampler_continues_the_sample_stream():
    full = list(itertools.islice(iter(TrainingSampler(10, seed=3)), 40))
    for skip in (0, 7, 23):
        assert list(itertools.islice(iter(ResumableTrainingSampler(10, seed=3, skip=skip)), 40 - skip)) == full[skip:]
    assert sorted(full[:10]) == list(range(10)) and full[:10] != full[10:20]  # shuffled epochs


def run_tool(*args, **env):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=300)


def test_missing_dataset_root_is_a_one_line_error_before_training(tmp_path):
    out = run_tool(os.path.join(CONFIGS, "coco_vitb.py"), "--data-root", str(tmp_path / "nowhere"),
                   "--output-dir", str(tmp_path / "run"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: dataset root") and "mask_rcnn_vitdet_toy_1000it.py" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing was set up


def test_malformed_annotations_and_bad_overrides_are_errors_before_training(det_root, tmp_path):
    root = tmp_path / "datasets"
    (root / "toy_scenes" / "coco" / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        os.symlink(det_root / "toy_scenes" / "coco" / split, root / "toy_scenes" / "coco" / split)
    (root / "toy_scenes" / "coco" / "annotations" / "instances_train.json").write_text('{"images": [}')
    (root / "toy_scenes" / "coco" / "annotations" / "instances_val.json").write_text("{}")
    out = run_tool("--config-file", TOY, "--data-root", str(root), "--output-dir", str(tmp_path / "run"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "instances_train.json is not valid JSON" in out.stderr and not (tmp_path / "run").exists()
    out = run_tool(TOY, "train.max_iters=3", "--data-root", str(det_root))
    assert out.returncode == 2 and out.stderr.startswith("error: unknown config key 'train.max_iters'")


def test_command_line_forms():
    tool = load_tool("train_det")
    args = tool.parse_args([TOY, "train.max_iter=3", "--resume", "--num-gpus", "2"])
    assert (args.config_file, args.opts, args.resume, args.num_gpus) == (TOY, ["train.max_iter=3"], True, 2)
    args = tool.parse_args(["--config-file", TOY, "--eval-only", "a.b=1", "--dist-url", "tcp://h:1"])
    assert (args.config_file, args.opts, args.eval_only, args.dist_url) == (TOY, ["a.b=1"], True, "tcp://h:1")
    assert tool.parse_args([]).config_file.endswith("mask_rcnn_vitdet_toy_1000it.py")
    with pytest.raises(UserError, match="two configs"):
        tool.parse_args(["--config-file", TOY, TOY])


class Signal(HookBase):
    """Sends this process `signum` before iteration `at` starts, as SLURM would before a time limit."""

    def __init__(self, at, signum):
        self.at, self.signum = at, signum

    def before_step(self):
        if self.trainer.iter == self.at:
            os.kill(os.getpid(), self.signum)


def test_a_stop_signal_saves_the_iteration_and_raises_preempted(small_root, tmp_path):
    register_datasets(str(small_root))
    cfg = engine.load_config(TOY, [*TINY, *FAST, "train.max_iter=5", "train.checkpointer.period=100",
                                   f"train.output_dir={tmp_path}"])
    engine.resolve_device(cfg)
    del cfg.dataloader.evaluator
    with pytest.raises(Preempted, match=r"SIGUSR1 received: saved iteration 2 .*continue with --resume"):
        engine.do_train(cfg, extra_hooks=[Signal(2, signal.SIGUSR1)])
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000002.pth"
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the handler is removed after the run
    record = Record()
    engine.do_train(cfg, resume=True, extra_hooks=[record])
    assert record.iterations == [3, 4]


def test_a_new_run_into_a_used_output_dir_is_refused_and_force_starts_over_keeping_the_init(small_root, tmp_path,
                                                                                             toy_checkpoints, capsys):
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    (tmp_path / "model_0000009.pth").write_bytes(b"earlier run")
    (tmp_path / "log.jsonl").write_text('{"iteration": 9}\n')
    init = tmp_path / "encoder_d2.pth"  # the run's initial weights, inside its directory
    shutil.copy(toy_checkpoints[1], init)
    tool = load_tool("train_det")
    argv = [TOY, "--output-dir", str(tmp_path), "--data-root", str(small_root), *FAST, "--init", str(init)]
    with pytest.raises(SystemExit) as stop:
        tool.main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.startswith("error: ") and "--resume" in err and "--force" in err
    assert (tmp_path / "model_0000009.pth").read_bytes() == b"earlier run"
    tool.main([*argv, "--force"])  # docs/cluster.md: the earlier run's files go, the initial weights stay
    assert not (tmp_path / "model_0000009.pth").exists() and init.read_bytes() == toy_checkpoints[1].read_bytes()
    assert '"iteration": 9}' not in (tmp_path / "log.jsonl").read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["iterations"] == 2


def test_an_external_launch_with_num_gpus_is_refused(monkeypatch, small_root, tmp_path, capsys):
    for key, value in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT="29999").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as stop:
        load_tool("train_det").main([TOY, "--num-gpus", "2", "--output-dir", str(tmp_path), *FAST])
    assert stop.value.code == 2 and "leave out --num-gpus" in capsys.readouterr().err


def test_rle_masks_train_through_the_tool(small_root, tmp_path):
    """A COCO export with RLE masks (the toy scenes write uncompressed counts; half are rewritten here compressed,
    as pycocotools writes them) under the polygon format of the real configs: the train mapper switches to
    bitmask instead of dying in a loader worker with "Cannot create polygons"."""
    import shutil

    from pycocotools import mask as mask_util

    root = tmp_path / "rle"
    shutil.copytree(small_root / "toy_scenes", root / "toy_scenes")
    ann_file = root / "toy_scenes" / "coco" / "annotations" / "instances_train.json"
    data = json.loads(ann_file.read_text())
    assert all(isinstance(a["segmentation"], dict) for a in data["annotations"])
    for ann in data["annotations"][::2]:
        h, w = ann["segmentation"]["size"]
        compressed = mask_util.frPyObjects(ann["segmentation"], h, w)
        ann["segmentation"] = {"size": [h, w], "counts": compressed["counts"].decode()}
    ann_file.write_text(json.dumps(data))
    load_tool("train_det").main([TOY, "--data-root", str(root), "--output-dir", str(tmp_path / "run"), *TINY,
                                 *FAST, "dataloader.train.mapper.instance_mask_format=polygon"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and "box_AP" in metrics["metrics"]
    assert "instance_mask_format: bitmask" in (tmp_path / "run" / "config.yaml").read_text()


def test_training_with_loader_workers_runs_and_exits(small_root, tmp_path):
    """Two loader workers (every other detection test uses none): the run trains, evaluates and exits."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, TOOL, TOY, "--data-root", str(small_root), "--output-dir", str(out),
                           *TINY, *FAST, "dataloader.train.num_workers=2", "dataloader.test.num_workers=2"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 2
    assert "num_workers: 2" in (out / "config.yaml").read_text()


def test_a_time_limit_checkpoint_outlives_the_rotation_of_periodic_ones(small_root, tmp_path):
    """Periodic checkpoints every iteration, one kept; a piece stopped by the time limit after iteration 0 leaves
    model_0000000.pth, which the next piece's rotation does not delete (it is the one a requeue resumes from)."""
    register_datasets(str(small_root))
    overrides = [*TINY, *FAST, "train.max_iter=4", "train.checkpointer.max_to_keep=1", f"train.output_dir={tmp_path}"]

    def cfg():
        c = engine.load_config(TOY, overrides)
        engine.resolve_device(c)
        del c.dataloader.evaluator
        return c

    assert engine.do_train(cfg(), time_limit_min=0) is None
    engine.do_train(cfg(), resume=True)
    kept = sorted(p.name for p in tmp_path.glob("model_*.pth"))
    assert kept == ["model_0000000.pth", "model_0000003.pth", "model_final.pth"]  # 1 and 2 rotated away


def test_the_wall_time_of_a_resumed_run_adds_every_piece(monkeypatch):
    """metrics.json's wall_time_s is RunState.seconds(): 30 s before the checkpoint (a crash after it loses the 4 s
    that were not saved), then 20 s of the resumed piece, counted from the load of the checkpoint."""
    now = [1000.0]
    monkeypatch.setattr(engine.time, "time", lambda: now[0])
    first = engine.RunState(seed=3)
    now[0] += 30
    saved = first.state_dict()  # the checkpoint
    now[0] += 4  # then the crash
    resumed = engine.RunState(seed=0)
    now[0] += 7  # the new piece starts up
    resumed.load_state_dict(saved)
    now[0] += 20
    assert resumed.seconds() == 50.0 and resumed.seed == 3
