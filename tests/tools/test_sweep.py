"""tools/sweep.py: the sweep's command line and its one-line errors, the table (mean ± std over seeds, each number
traced to its metrics.json) built from finished runs without rerunning them, and a real sweep at a tiny budget."""
import importlib.util
import json
import os
import statistics

import pytest

from asl.cli import UserError
from asl.data.toy import write_toy_scenes
from chain.sweep import Sweep, parse_sweep, split_values, twin_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_ASL = os.path.join(REPO, "configs", "pretrain", "toy_asl.py")
DUMMY_TASK = os.path.join(REPO, "tests", "fixtures", "dummy_task", "task.py")  # a task from outside the toolkit


def sweep_tool():
    spec = importlib.util.spec_from_file_location("tool_sweep", os.path.join(REPO, "tools", "sweep.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(argv, capsys):
    """(exit status, stderr) of tools/sweep.py run in this process."""
    with pytest.raises(SystemExit) as stop:
        sweep_tool().main(argv)
    return stop.value.code, capsys.readouterr().err


def test_values_split_at_top_level_commas_only():
    assert split_values("0.1, 1,10") == ["0.1", "1", "10"]
    assert split_values("(0.9,0.95),(0.9,0.999)") == ["(0.9,0.95)", "(0.9,0.999)"]
    assert split_values("'a,b',{'x': 1, 'y': 2}") == ["'a,b'", "{'x': 1, 'y': 2}"]
    assert parse_sweep("model.sem_weight=0.1,0.5,1,2") == ("model.sem_weight", ["0.1", "0.5", "1", "2"])
    assert twin_config(TOY_ASL) == os.path.join(REPO, "configs", "pretrain", "toy_mae.py")
    assert twin_config(os.path.join(REPO, "configs", "pretrain", "vitb_coco_asl_800ep.py")).endswith(
        "vitb_coco_mae_800ep.py")


@pytest.mark.parametrize("argv, message", [
    ([TOY_ASL, "model.temprature=0.1,1"],
     "unknown config key 'model.temprature': model has no 'temprature' (did you mean 'temperature'?)"),
    ([TOY_ASL, "model.temperature="], "has an empty value"),
    ([TOY_ASL, "model.temperature=0.1,,1"], "has an empty value"),
    ([TOY_ASL, "model.temperature=1,1"], "lists 1 more than once"),
    ([TOY_ASL], "give the key to sweep and its values"),
    ([TOY_ASL, "model.temperature=1,2", "optim.epoch=3"], "unknown config key 'optim.epoch'"),
    ([TOY_ASL, "model.temperature=1,2", "model.temperature=3"], "model.temperature is both swept and fixed"),
    ([TOY_ASL, "runtime.seed=1,2"], "sweep seeds with --seeds or --seed-list"),
    ([TOY_ASL, "model.temperature=1,2", "--seeds", "0"], "no seeds"),
    ([TOY_ASL, "model.temperature=1,2", "--seed-list", "0,x"], "is not comma-separated integers"),
    ([TOY_ASL, "model.temperature=1,2", "--seed-list", "0,0,1"], "names a seed twice"),
    ([TOY_ASL, "model.temperature=1,2", "--jobs", "0"], "--jobs must be a positive integer, got 0"),
    ([TOY_ASL, "model.temperature=1,2", "--jobs", "2", "--nproc", "2"], "cannot share; use --jobs 1"),
    ([TOY_ASL, "model.temperature=1,2", "--eval-override", "optim.epoch=1"], "unknown config key 'optim.epoch'"),
    ([os.path.join(REPO, "configs", "pretrain", "toy_asl_gpu.py"), "model.temperature=1,2", "--baseline", "mae"],
     "has no MAE twin"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "linprob"], "unknown evaluation 'linprob' (did you mean"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "dummy", "--task", DUMMY_TASK],
     "the task 'dummy' declares no toy protocol: give its config with --eval-config"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "probe,probe"], "--eval names each task once"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "probe,finetune", "--eval-override", "optim.epochs=1"],
     "with several evaluations (probe, finetune), say which one it is for, e.g. probe:optim.epochs=1"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "probe,finetune", "--eval-config", "configs/finetune/toy.py"],
     "say which one it is for, e.g. probe=configs/finetune/toy.py"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "probe", "--eval-override", "finetune:optim.epochs=1"],
     "is for 'finetune', which is not one of the evaluations (probe)"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "probe", "--eval-config", "finetune=configs/finetune/toy.py"],
     "is for 'finetune', which is not one of the evaluations (probe)"),
    ([TOY_ASL, "model.temperature=1,2", "--eval", "probe,finetune", "--eval-override", "finetune:optim.epoch=1"],
     "unknown config key 'optim.epoch'"),
])
def test_mistakes_are_one_line_errors_before_any_run(argv, message, tmp_path, capsys):
    status, err = run_tool([*argv, "--output-dir", str(tmp_path / "work")], capsys)
    assert status == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()


def _finish(run_dir, stage, method, **metrics):
    """A finished run as the tools leave it: metrics.json in its run directory."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump({"stage": stage, "init": {"method": method, "checkpoint": None}, "metrics": metrics}, f)


def test_an_eval_override_of_a_protocol_key_replaces_it_instead_of_repeating_it():
    """configs/pipeline/toy.py's linear probing caches features; a sweep that sets the key again lists it once."""
    tool = sweep_tool()
    args = tool.parse_args([TOY_ASL, "model.temperature=1,2", "--eval", "linprobe,finetune", "--eval-override",
                            "linprobe:data.cache_features=False", "--eval-override", "finetune:optim.epochs=3"])
    _, overrides = tool.eval_settings(args, ["linprobe", "finetune"])
    assert overrides["linprobe"] == ["data.cache_features=False"]
    assert overrides["finetune"] == ["optim.epochs=3"]


def test_finished_runs_are_reused_and_tabulated_with_their_sources(tmp_path, capfd):
    sweep = Sweep(TOY_ASL, "model.sem_weight", ["0.5", "1"], ["optim.epochs=30"], ["linprobe"],
                  {"linprobe": os.path.join(REPO, "configs", "linprobe", "toy.py")}, {}, [0, 1, 2],
                  twin_config(TOY_ASL), work_dir=str(tmp_path / "work"))
    top1 = {"model.sem_weight=0.5": [50.0, 54.0, 52.0], "model.sem_weight=1": [60.0, 61.0, 62.0],
            "baseline_toy_mae": [40.0, 42.0, 44.0]}
    for row, numbers in top1.items():
        method = "mae" if row.startswith("baseline") else "asl"
        for seed, number in enumerate(numbers):
            seed_dir = tmp_path / "work" / row / f"seed{seed}"
            _finish(seed_dir / "pretrain" / method, "pretrain", method, loss=1.0)
            _finish(seed_dir / "linprobe" / method, "linprobe", method, top1=number)
    paths = sweep.run(out=str(tmp_path / "docs" / "sweep"))
    out = capfd.readouterr().out
    assert out.count("reusing") == 9 and "[sweep] 9 runs (9 finished before)" in out  # nothing was run
    md = open(paths["markdown"]).read()
    assert "| model.sem_weight=0.5 | 52.0 ± 2.0 | 3/3 | 50.0, 54.0, 52.0 |" in md
    assert "| model.sem_weight=1 | 61.0 ± 1.0 | 3/3 |" in md and "| baseline toy_mae | 42.0 ± 2.0 | 3/3 |" in md
    rows = json.load(open(paths["json"]))["rows"]
    assert rows[0]["std"] == pytest.approx(statistics.stdev([50.0, 54.0, 52.0]))
    assert rows[2]["pretrain_config"].endswith("toy_mae.py") and "optim.epochs=30" in rows[2]["overrides"]
    assert not any(o.startswith("model.sem_weight") for o in rows[2]["overrides"])  # the baseline is not swept
    source = rows[1]["runs"][2]["metrics_json"]["linprobe"]
    assert json.load(open(source))["metrics"]["top1"] == rows[1]["runs"][2]["linprobe.top1"] == 62.0
    assert source == str(tmp_path / "work" / "model.sem_weight=1" / "seed2" / "linprobe" / "asl" / "metrics.json")
    other_budget = Sweep(TOY_ASL, "model.sem_weight", ["0.5"], ["optim.epochs=10"], ["linprobe"],
                         {"linprobe": os.path.join(REPO, "configs", "linprobe", "toy.py")}, {}, [0], None,
                         work_dir=str(tmp_path / "work"))
    with pytest.raises(UserError, match="holds a sweep made with other baseline, fixed"):
        other_budget.run()


def test_a_probe_sweep_tabulates_every_probe_and_a_random_row(tmp_path, capfd):
    sweep = Sweep(TOY_ASL, "model.sem_weight", ["0", "1"], [], ["probe"],
                  {"probe": os.path.join(REPO, "configs", "probe", "toy.py")}, {}, [0, 1], random=True,
                  work_dir=str(tmp_path / "work"))
    numbers = {"model.sem_weight=0": [(30, 40, 20), (32, 44, 22)], "model.sem_weight=1": [(35, 45, 25), (37, 47, 21)],
               "random_init": [(25, 24, 15), (27, 26, 16)]}
    for row, per_seed in numbers.items():
        method = "random" if row == "random_init" else "asl"
        for seed, (knn, linear, dense) in enumerate(per_seed):
            seed_dir = tmp_path / "work" / row / f"seed{seed}"
            if method == "asl":
                _finish(seed_dir / "pretrain" / method, "pretrain", method, loss=1.0)
            _finish(seed_dir / "probe" / method, "probe", method, knn_top1=knn, linear_top1=linear,
                    dense_mIoU=dense)
    paths = sweep.run(out=str(tmp_path / "table"))
    assert capfd.readouterr().out.count("reusing") == 3 * 2  # (2 values and the random row) x 2 seeds
    md = open(paths["markdown"]).read()
    assert "| run | kNN top-1 | linear top-1 | dense mIoU | seeds done | probe.knn_top1 per seed |" in md
    assert "| model.sem_weight=1 | 36.0 ± 1.4 | 46.0 ± 1.4 | 23.0 ± 2.8 | 2/2 | 35.0, 37.0 |" in md
    assert "| random init | 26.0 ± 1.4 | 25.0 ± 1.4 | 15.5 ± 0.7 | 2/2 | 25.0, 27.0 |" in md
    random_row = json.load(open(paths["json"]))["rows"][-1]
    assert random_row["pretrain_config"] is None and random_row["runs"][1]["pretrain_metrics_json"] is None
    assert random_row["columns"]["probe.dense_mIoU"]["mean"] == 15.5 and random_row["mean"] == 26.0  # headline: kNN


def test_several_evaluations_make_one_table_of_every_task_s_columns(tmp_path, capfd):
    """Probes, linear probing and fine-tuning of the same encoders: each task's columns, the two tasks' top1 kept
    apart; a seed counts once every task has finished it."""
    sweep = Sweep(TOY_ASL, "optim.epochs", ["25", "40"], [], ["probe", "linprobe", "finetune"],
                  {task: os.path.join(REPO, "configs", task, "toy.py") for task in ("probe", "linprobe", "finetune")},
                  {"finetune": ["optim.epochs=10"]}, [0, 1], work_dir=str(tmp_path / "work"))
    for value, offset in (("25", 0), ("40", 10)):
        for seed in (0, 1):
            seed_dir = tmp_path / "work" / f"optim.epochs={value}" / f"seed{seed}"
            _finish(seed_dir / "pretrain" / "asl", "pretrain", "asl", loss=1.0)
            _finish(seed_dir / "probe" / "asl", "probe", "asl", knn_top1=30 + offset + seed, linear_top1=40,
                    dense_mIoU=20)
            _finish(seed_dir / "linprobe" / "asl", "linprobe", "asl", top1=50 + offset + 2 * seed)
            if (value, seed) != ("40", 1):  # this point has not finished fine-tuning
                _finish(seed_dir / "finetune" / "asl", "finetune", "asl", top1=60 + offset)
    md = open(sweep.write_table(str(tmp_path / "table"))["markdown"]).read()
    assert ("| run | kNN top-1 | linear top-1 | dense mIoU | LP top-1 | FT top-1 | seeds done | probe.knn_top1 per "
            "seed |") in md
    assert "| optim.epochs=25 | 30.5 ± 0.7 | 40.0 ± 0.0 | 20.0 ± 0.0 | 51.0 ± 1.4 | 60.0 ± 0.0 | 2/2 | 30.0, 31.0 |" \
        in md
    assert "| optim.epochs=40 | 40.0 | 40.0 | 20.0 | 60.0 | 70.0 | 1/2 | 40.0 |" in md
    assert "finetune with `configs/finetune/toy.py optim.epochs=10`" in md
    run = json.load(open(tmp_path / "table.json"))["rows"][0]["runs"][1]
    assert (run["linprobe.top1"], run["finetune.top1"]) == (52.0, 60.0)
    assert run["metrics_json"]["finetune"] == str(tmp_path / "work" / "optim.epochs=25" / "seed1" / "finetune" / "asl"
                                                  / "metrics.json")
    (row, *_) = sweep.rows()
    step = sweep.point_step(row, 1, ["pretrain", "probe", "linprobe", "finetune"])
    assert step.done == run["metrics_json"]["finetune"]  # the task the pipeline runs last
    point = {}
    exec(open(step.cmd[step.cmd.index("--output-dir") - 1]).read(), point)
    assert point["cfg"]["finetune"]["overrides"] == ["optim.epochs=10", "runtime.seed=1"]
    assert point["cfg"]["probe"]["overrides"] == ["runtime.seed=1"]


@pytest.mark.slow  # the sweep's end-to-end run (make test-slow); the dummy-task sweep below runs by default
def test_a_tiny_sweep_pretrains_evaluates_and_reuses(tmp_path, capfd, monkeypatch):
    """Two λ values, the MAE baseline and random weights, one seed, 2 pretraining steps and a 1-epoch probe each,
    two runs at once (about 40 s)."""
    write_toy_scenes(str(tmp_path / "data" / "toy_scenes"), num_unlabeled=16, num_train=8, num_val=4, size=64)
    argv = [TOY_ASL, "model.temperature=0.5,2", "model.arch='vit_micro_patch8'", "model.img_size=32",
            "model.decoder={'embed_dim': 32, 'depth': 1, 'num_heads': 2}", "data.num_workers=0",
            "optim.batch_size=8", "optim.epochs=1", "runtime.tensorboard=False", "--baseline", "mae", "--random",
            "--eval-override", "data.num_workers=0", "--eval-override", "optim.epochs=1", "--eval-override",
            "optim.batch_size=8", "--eval-override", "runtime.tensorboard=False", "--data-root",
            str(tmp_path / "data"), "--output-dir", str(tmp_path / "work"), "--out", str(tmp_path / "table")]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sweep_tool().main([*argv, "--jobs", "2"])
    first, second = json.load(open(tmp_path / "work" / "timeline.json"))["steps"][:2]
    assert max(first["start_s"], second["start_s"]) < min(first["end_s"], second["end_s"])  # side by side
    assert "[pipeline] pretrain asl: " in (tmp_path / "work" / "logs" / "model.temperature=2_seed0.log").read_text()
    rows = json.load(open(tmp_path / "table.json"))["rows"]
    assert [r["run"] for r in rows] == ["model.temperature=0.5", "model.temperature=2", "baseline toy_mae",
                                        "random init"]
    (random_run,) = rows[3]["runs"]
    assert json.load(open(random_run["metrics_json"]["linprobe"]))["init"]["method"] == "random"
    for row, (method, temperature) in zip(rows, [("asl", 0.5), ("asl", 2), ("mae", 1.0)]):
        (run,) = row["runs"]
        assert row["n"] == 1 and row["std"] is None and row["mean"] == run["linprobe.top1"]
        probe = json.load(open(run["metrics_json"]["linprobe"]))
        assert probe["stage"] == "linprobe" and probe["init"]["method"] == method
        pretrained = json.load(open(run["pretrain_metrics_json"]))
        assert pretrained["init"]["method"] == method and pretrained["iterations"] == 2
        config = json.load(open(pretrained["config"]))
        assert config["model"]["temperature"] == temperature and config["optim"]["epochs"] == 1
    capfd.readouterr()
    sweep_tool().main(argv)  # everything finished: reused, the same table
    assert capfd.readouterr().out.count("reusing") == 4
    assert json.load(open(tmp_path / "table.json"))["rows"] == rows


def test_a_task_of_ones_own_is_swept_from_its_folder_beside_a_builtin_one(tmp_path, capfd, monkeypatch):
    """tests/fixtures/dummy_task, named with --task, evaluated beside the frozen-feature probes: pretraining at two
    values, both tools on each encoder, both tasks' columns in the table; nothing of the toolkit knows the dummy."""
    write_toy_scenes(str(tmp_path / "data" / "toy_scenes"), num_unlabeled=16, num_train=4, num_val=4, size=64)
    eval_config = tmp_path / "dummy_config.py"
    eval_config.write_text("cfg = dict(runtime=dict(seed=0))\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sweep_tool().main([TOY_ASL, "model.temperature=0.5,2", "model.arch='vit_micro_patch8'", "model.img_size=32",
                       "model.decoder={'embed_dim': 32, 'depth': 1, 'num_heads': 2}", "data.num_workers=0",
                       "optim.batch_size=8", "optim.epochs=1", "runtime.tensorboard=False", "--task", DUMMY_TASK,
                       "--eval", "dummy,probe", "--eval-config", f"dummy={eval_config}", "--eval-override",
                       "probe:model.arch='vit_micro_patch8'", "--eval-override", "probe:model.img_size=32",
                       "--eval-override", "probe:probe.toy.num_train=8", "--eval-override", "probe:probe.toy.num_val=8",
                       "--eval-override", "probe:probe.toy.size=32", "--data-root", str(tmp_path / "data"),
                       "--output-dir", str(tmp_path / "work"), "--out", str(tmp_path / "table")])
    rows = json.load(open(tmp_path / "table.json"))["rows"]
    assert [r["run"] for r in rows] == ["model.temperature=0.5", "model.temperature=2"]
    for row in rows:
        (run,) = row["runs"]
        assert row["mean"] == run["dummy.score"] == 30.0  # the dummy tool's 10 x len("asl"): the headline
        assert json.load(open(run["metrics_json"]["dummy"]))["stage"] == "dummy"
        probe = json.load(open(run["metrics_json"]["probe"]))
        assert probe["stage"] == "probe" and run["probe.knn_top1"] == probe["metrics"]["knn_top1"]
    assert "| run | dummy score | kNN top-1 | linear top-1 | dense mIoU |" in open(tmp_path / "table.md").read()
