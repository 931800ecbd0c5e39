import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from asl.cli import UserError
from asl.config import load_config
from asl.data.toy import classification_objects
from asl.records import write_json
from chain.pipeline import Pipeline, Step
from chain.task import BUILTIN

CFG = dict(inits=["asl", "random"], toy=None, title="t",
           linprobe=dict(config="unused.py", overrides=[]), finetune=dict(config="unused.py", overrides=[]))


def _write(path, stage, method, **metrics):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"stage": stage, "init": {"method": method, "checkpoint": None}, "metrics": metrics,
                   "iterations": 520, "epochs": 40.0, "config": None}, f)


def test_finished_stages_are_reused_and_the_table_reads_their_files(tmp_path, capsys):
    pipe = Pipeline(CFG, str(tmp_path))
    for method, top1 in (("asl", 61.0), ("random", 40.0)):
        _write(pipe.path("linprobe", method, "metrics.json"), "linprobe", method, top1=top1)
    with open(pipe.path("step_times.json"), "w") as f:
        json.dump({"linprobe asl": 100.0, "linprobe random": 23.0}, f)  # the runs that made those results
    pipe.run(["linprobe", "table"])  # linprobe results exist: no tool is started
    out = capsys.readouterr().out
    times = json.loads(open(pipe.path("stage_times.json")).read())
    assert times["linprobe"] == 123.0 and "table" in times  # a reused stage keeps its measured time
    assert out.count("reusing") == 2 and "| asl | 61.0 |" in out and "| random | 40.0 |" in out
    assert "* linear probing: 520 iterations (40 epochs) for every initialisation" in out  # the runs' budgets
    assert os.path.exists(pipe.path("results", "results.png")) and os.path.exists(pipe.path("stage_times.json"))


def test_failing_stage_and_unknown_stage_are_clear_errors(tmp_path):
    pipe = Pipeline(dict(CFG, linprobe=dict(config=str(tmp_path / "missing.py"), overrides=[])), str(tmp_path))
    with pytest.raises(UserError, match="stage 'linprobe asl' failed"):
        pipe.run(["linprobe"])
    timeline = json.loads((tmp_path / "timeline.json").read_text())  # written after the failure too
    assert [(s["step"], s["status"]) for s in timeline["steps"]] == [("linprobe asl", 2)]  # a user error
    first = json.loads((tmp_path / "step_times.json").read_text())["linprobe asl"]
    with pytest.raises(UserError, match="stage 'linprobe asl' failed"):
        pipe.run(["linprobe"])  # the same step again: its seconds are added to the first invocation's
    (again,) = json.loads((tmp_path / "timeline.json").read_text())["steps"]
    total = json.loads((tmp_path / "step_times.json").read_text())["linprobe asl"]
    assert total == pytest.approx(first + again["end_s"] - again["start_s"], abs=0.05) and total > first
    assert json.loads((tmp_path / "stage_times.json").read_text())["linprobe"] == pytest.approx(total)
    with pytest.raises(UserError, match="unknown stage"):
        pipe.run(["pretrian"])
    with pytest.raises(UserError, match="no transfer results"):
        Pipeline(CFG, str(tmp_path / "empty")).run(["table"])


def test_a_transfer_stage_left_out_of_the_config_is_skipped(tmp_path, capsys):
    cfg = dict(CFG, detection=None, segmentation=dict(config="unused.py"))
    pipe = Pipeline(cfg, str(tmp_path))
    assert pipe.convert_targets() == ["mmseg"]  # no detectron2 file for a config without detection
    pipe.run(["detection"])
    assert "detection: not part of this config, skipped" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["stage_times.json", "step_times.json", "timeline.json"]
    assert json.loads((tmp_path / "stage_times.json").read_text()) == {}


def test_a_killed_transfer_stage_resumes_from_its_checkpoint(toy_root, tmp_path):
    """The fine-tuning stage is killed (SIGKILL, the whole pipeline) after a few checkpointed steps; the rerun
    continues that stage from its checkpoint and ends with the full budget."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = tmp_path / "pipe.py"
    overrides = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0",
                 "runtime.tensorboard=False", f"data.path={toy_root}", "optim.batch_size=8", "optim.epochs=8",
                 "runtime.save_every_iters=1"]
    config.write_text(f"cfg = dict(inits=['random'], toy=None, title='t', finetune=dict(config="
                      f"{os.path.join(repo, 'configs', 'finetune', 'toy.py')!r}, overrides={overrides!r}))\n")
    cmd = [sys.executable, os.path.join(repo, "tools", "run_pipeline.py"), str(config), "--output-dir",
           str(tmp_path / "work"), "--stages", "finetune"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = tmp_path / "work" / "finetune" / "random" / "checkpoints" / "last.pth"
    while proc.poll() is None and not (ckpt.exists() and torch.load(ckpt, weights_only=True)["iteration"] >= 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["iteration"]
    assert not (tmp_path / "work" / "finetune" / "random" / "metrics.json").exists(), "killed too late"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resumed from {ckpt} at iteration {killed_at}" in out.stdout
    metrics = json.loads((tmp_path / "work" / "finetune" / "random" / "metrics.json").read_text())
    assert metrics["iterations"] == 8 * (len(classification_objects(str(toy_root), "train")) // 8)


def test_force_needs_the_stages_named(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(repo, "tools", "run_pipeline.py"), "--force", "--output-dir",
                          str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: --force redoes the stages named by --stages")


def _step(tmp_path, name, seconds, needs=(), status=0):
    """A step that records its start, end and OMP_NUM_THREADS in its done file (or exits with `status`)."""
    done = tmp_path / f"{name}.json"
    code = (f"import json, os, sys, time; start = time.time(); time.sleep({seconds}); "
            f"status = {status}; status or json.dump(dict(start=start, end=time.time(), "
            "threads=os.environ.get('OMP_NUM_THREADS')), open(sys.argv[1], 'w')); "
            f"print('step', {name!r}, 'says bye'); sys.exit(status)")
    return Step(name, "linprobe", [sys.executable, "-c", code, str(done)], str(done), needs, resumable=False)


def test_steps_run_in_parallel_as_their_needs_allow(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("chain.pipeline.available_cores", lambda: 6)
    pipe = Pipeline(dict(CFG, jobs=2), str(tmp_path))
    steps = [_step(tmp_path, "a", 1.0), _step(tmp_path, "b", 1.0), _step(tmp_path, "c", 0.1, needs=("a",))]
    pipe.run_steps(steps)
    a, b, c = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "abc")
    assert b["start"] < a["end"] and a["start"] < b["end"]  # a and b overlapped
    assert c["start"] >= a["end"]  # c waited for a
    assert a["threads"] == "3"  # each step got its share of the cores (6 / 2)
    assert "says bye" in (tmp_path / "logs" / "a.log").read_text()  # parallel steps write to their logs
    # each step's seconds cover its own run (the interpreter's start is the slack: seconds on a loaded machine)
    ran = {n: d["end"] - d["start"] for n, d in zip("abc", (a, b, c))}
    assert set(pipe.seconds) == set(ran) and all(ran[n] <= pipe.seconds[n] <= ran[n] + 10 for n in ran), pipe.seconds
    assert ran["a"] >= 1.0 and ran["c"] >= 0.1
    pipe.run_steps(steps)  # everything done: reused, nothing rerun
    assert json.loads((tmp_path / "c.json").read_text()) == c


def test_running_steps_show_their_last_log_line_every_so_often(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("chain.pipeline.PROGRESS_EVERY_S", 0.3)
    code = "import sys, time; print('epoch 3/9, loss 0.5', flush=True); time.sleep(1.5); open(sys.argv[1], 'w')"
    done = tmp_path / "talker.json"
    Pipeline(dict(CFG, jobs=2), str(tmp_path)).run_steps(
        [Step("talker", "linprobe", [sys.executable, "-c", code, str(done)], str(done), resumable=False)])
    progress = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[pipeline] talker (")]
    assert len(progress) >= 2 and all(ln.endswith(" s): epoch 3/9, loss 0.5") for ln in progress), progress


def test_a_step_that_runs_alone_shares_no_time_and_keeps_every_core(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("chain.pipeline.available_cores", lambda: 2)
    pipe = Pipeline(dict(CFG, jobs=2), str(tmp_path))
    alone = _step(tmp_path, "alone", 0.5)
    alone.alone = True
    pipe.run_steps([_step(tmp_path, "a", 0.5), alone, _step(tmp_path, "b", 0.5)])
    a, solo, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a", "alone", "b"))
    assert solo["start"] >= a["end"] and b["start"] >= solo["end"]  # nothing ran beside it
    assert solo["threads"] is None and a["threads"] == "1"


def test_pretraining_runs_alone_unless_the_config_says_otherwise():
    """Pretraining steps run alone with every core by default; `pretrain.alone=False` (the toy chain) lets ASL's
    and MAE's run at once, one thread each."""
    base = dict(CFG, pretrain=dict(configs=dict(asl="a.py", mae="m.py")), inits=["asl", "mae", "random"])
    assert [s.alone for s in Pipeline(base, "unused").steps_pretrain()] == [True, True]
    shared = dict(base, pretrain=dict(base["pretrain"], alone=False))
    assert [s.alone for s in Pipeline(shared, "unused").steps_pretrain()] == [False, False]
    toy = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                                   "pipeline", "toy.py"))
    assert toy["pretrain"]["alone"] is False and toy["jobs"] == 2


def test_start_first_puts_its_stages_right_after_pretraining_in_its_order_and_keeps_the_rest_in_theirs(tmp_path):
    steps = [Step(name, name.split()[0], [], "") for name in (
        "pretrain asl", "convert asl mmseg", "probe asl", "probe random", "finetune random", "detection random",
        "segmentation random", "detection asl")]
    steps.append(Step("segmentation asl", "segmentation", [], "", needs=("convert asl mmseg",)))
    ordered = Pipeline(dict(CFG, start_first=["segmentation", "detection"]), str(tmp_path)).preferred_order(steps)
    # the conversion a segmentation run waits for goes with the segmentation runs, not with the rest
    assert [s.name for s in ordered] == ["pretrain asl", "convert asl mmseg", "segmentation random",
                                         "segmentation asl", "detection random", "detection asl", "probe asl",
                                         "probe random", "finetune random"]
    assert Pipeline(CFG, str(tmp_path)).preferred_order(steps) == steps
    with pytest.raises(UserError, match="start_first names detektion, which is not a transfer stage"):
        Pipeline(dict(CFG, start_first=["detektion"]), str(tmp_path))
    with pytest.raises(UserError, match="start_first must be a list of transfer stages, got 'detection'"):
        Pipeline(dict(CFG, start_first="detection"), str(tmp_path))


def test_one_at_a_time_keeps_the_order(tmp_path):
    pipe = Pipeline(CFG, str(tmp_path))
    pipe.run_steps([_step(tmp_path, "a", 0.3), _step(tmp_path, "b", 0.3)])
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["end"] <= b["start"] and not (tmp_path / "logs").exists()


def test_a_failed_step_starts_nothing_new_and_is_named_with_its_log(tmp_path, capsys):
    pipe = Pipeline(dict(CFG, jobs=2), str(tmp_path))
    steps = [_step(tmp_path, "bad", 0.1, status=3), _step(tmp_path, "slow", 1.0),
             _step(tmp_path, "after", 0.1, needs=("bad",)), _step(tmp_path, "later", 0.1)]
    with pytest.raises(UserError, match=r"stage 'bad' failed \(its log: .*bad.log\)"):
        pipe.run_steps(steps)
    assert (tmp_path / "slow.json").exists()  # the running step finished
    assert not (tmp_path / "after.json").exists() and not (tmp_path / "later.json").exists()
    assert "step bad says bye" in capsys.readouterr().err  # the end of the failed step's log


def test_a_preempted_step_stops_the_pipeline_with_its_status(tmp_path):
    pipe = Pipeline(dict(CFG, jobs=2), str(tmp_path))
    steps = [_step(tmp_path, "stopped", 0.1, status=75), _step(tmp_path, "running", 0.8),
             _step(tmp_path, "next", 0.1)]
    with pytest.raises(SystemExit) as stop:
        pipe.run_steps(steps)
    assert stop.value.code == 75
    assert (tmp_path / "running.json").exists() and not (tmp_path / "next.json").exists()

    # through run(): the stopped invocation still writes its timeline (docs/pipeline.md)
    again = Pipeline(CFG, str(tmp_path / "again"))
    again.steps_transfer = lambda task: [_step(tmp_path, "stopped again", 0.1, status=75)]
    with pytest.raises(SystemExit):
        again.run(["linprobe"])
    timeline = json.loads((tmp_path / "again" / "timeline.json").read_text())
    assert [(s["step"], s["status"]) for s in timeline["steps"]] == [("stopped again", 75)] and timeline["wall_s"] > 0


def test_unmet_needs_and_bad_settings_are_one_line_errors(tmp_path):
    pipe = Pipeline(dict(CFG, jobs=2), str(tmp_path))
    a = _step(tmp_path, "a", 0.0, needs=("b",))
    b = _step(tmp_path, "b", 0.0, needs=("a",))
    with pytest.raises(UserError, match=r"needs were never met: a \(needs b\); b \(needs a\)"):
        pipe.run_steps([a, b])
    with pytest.raises(UserError, match="twice"):
        Pipeline(dict(CFG, inits=["asl", "asl"]), str(tmp_path))
    with pytest.raises(UserError, match="positive integer"):
        Pipeline(CFG, str(tmp_path), jobs=0)
    with pytest.raises(UserError, match=r"nproc > 1: linprobe\) cannot share; use jobs=1"):
        Pipeline(dict(CFG, linprobe=dict(config="x.py", nproc=8)), str(tmp_path), jobs=2)


def test_a_stop_signal_to_the_pipeline_reaches_its_running_steps(tmp_path):
    """SIGTERM to the pipeline's process alone (not its group): the running step gets it, exits 75 as a tool
    would, and the pipeline exits 75 without starting the next step."""
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(75)); "
            "open(sys.argv[1] + '.started', 'w').close(); time.sleep(30)")
    done = tmp_path / "slow.json"
    slow = Step("slow", "linprobe", [sys.executable, "-c", code, str(done)], str(done), resumable=False)
    pipe = Pipeline(dict(CFG, jobs=2), str(tmp_path))
    killer = subprocess.Popen([sys.executable, "-c", "import os, sys, time\n"
                               f"while not os.path.exists({str(done) + '.started'!r}): time.sleep(0.05)\n"
                               f"os.kill({os.getpid()}, 15)"])
    start = time.time()
    with pytest.raises(SystemExit) as stop:
        pipe.run_steps([slow, _step(tmp_path, "next", 0.0, needs=("slow",))])
    killer.wait()
    assert stop.value.code == 75 and time.time() - start < 20 and not (tmp_path / "next.json").exists()


def test_a_task_declared_in_its_own_folder_runs_through_the_pipeline_and_the_table(tmp_path, capsys):
    """A new transfer task is its folder (a task.py and its tool) plus its line in the pipeline config."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "dummy_task")
    cfg = dict(inits=["asl", "random"], toy=None, title="t", tasks=[os.path.join(folder, "task.py")],
               pretrain=dict(configs=dict(asl="unused.py")), dummy=dict(config="unused.py"))
    pipe = Pipeline(cfg, str(tmp_path))
    assert pipe.stages == ("data", "pretrain", "visualize", "convert", "dummy", "table")
    os.makedirs(os.path.dirname(pipe.pretrained("asl")))
    open(pipe.pretrained("asl"), "w").close()
    _write(pipe.path("pretrain", "asl", "metrics.json"), "pretrain", "asl")  # pretraining counts as done
    pipe.run(["pretrain", "dummy", "table"])
    out = capsys.readouterr().out
    assert "| init | dummy score |" in out and "| asl | 30.0 |" in out and "| random | 0.0 |" in out
    assert "* dummy counting: 3 counts for every initialisation" in out and "training seed: 7" in out
    saved = json.loads(open(pipe.path("results", "results.json")).read())
    assert saved["rows"]["asl"]["dummy score"]["source"] == pipe.path("dummy", "asl", "metrics.json")


def test_the_pipeline_seed_reaches_every_stage_in_its_own_key(tmp_path, capsys):
    """seed=N sets each stage's training seed through the key its task declares (train.seed for detectron2,
    randomness.seed for mmengine, runtime.seed for ours); the table reports the seed the runs saved."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "dummy_task")
    unused = dict(config="unused.py")
    cfg = dict(CFG, seed=3, tasks=[*BUILTIN, os.path.join(folder, "task.py")], pretrain=dict(configs=dict(asl="a.py")),
               detection=unused, segmentation=unused, dummy=unused)
    pipe = Pipeline(cfg, str(tmp_path))
    keys = {step.name: [a for a in step.cmd if a.endswith("seed=3")]
            for step in pipe.steps_pretrain() + [s for t in pipe.tasks.values() if t.name in cfg
                                                 for s in pipe.steps_transfer(t)] if step.name.endswith(" asl")}
    assert keys["pretrain asl"] == ["runtime.seed=3"] and keys["detection asl"] == ["train.seed=3"]
    assert keys["segmentation asl"] == ["randomness.seed=3"] and keys["finetune asl"] == ["runtime.seed=3"]
    assert all(len(v) == 1 for v in keys.values())
    unseeded = Pipeline(dict(cfg, seed=None), str(tmp_path / "b"))
    commands = unseeded.steps_pretrain()[0].cmd + unseeded.steps_transfer(unseeded.tasks["detection"])[0].cmd
    assert not any("seed=" in a for a in commands)
    for step in pipe.steps_transfer(pipe.tasks["dummy"]):
        subprocess.run(step.cmd, check=True)
    pipe.run(["table"])
    assert "training seed: 3 (one run per cell)" in capsys.readouterr().out


def test_overrides_alone_apply_to_the_default_config(tmp_path):
    """`run_pipeline.py seed=1` (no config) overrides the toy config; a config path still comes first."""
    from tools.run_pipeline import DEFAULT_CONFIG, parse_args

    args = parse_args(["seed=1", "jobs=1", "--output-dir", str(tmp_path)])
    assert args.config == DEFAULT_CONFIG and args.overrides == ["seed=1", "jobs=1"]
    config = tmp_path / "mine.py"
    config.write_text("cfg = dict()\n")
    args = parse_args([str(config), "seed=1"])
    assert args.config == str(config) and args.overrides == ["seed=1"]


def test_force_redoes_the_named_stage_only_and_a_rerun_reuses_it(tmp_path):
    """A finished stage is reused on a rerun; --force redoes it from scratch (the tool gets --force) and leaves
    the stages it did not name alone."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "dummy_task")
    cfg = dict(inits=["asl", "random"], toy=None, title="t", tasks=[os.path.join(folder, "task.py")],
               pretrain=dict(configs=dict(asl="unused.py")), dummy=dict(config="unused.py"))
    pipe = Pipeline(cfg, str(tmp_path))
    os.makedirs(os.path.dirname(pipe.pretrained("asl")))
    open(pipe.pretrained("asl"), "w").close()
    _write(pipe.path("pretrain", "asl", "metrics.json"), "pretrain", "asl")
    runs = lambda m: open(pipe.path("dummy", m, "runs.txt")).read().split()  # noqa: E731
    pipe.run(["pretrain", "dummy", "table"])
    Pipeline(cfg, str(tmp_path)).run(["pretrain", "dummy", "table"])
    assert runs("asl") == runs("random") == ["resume"]
    Pipeline(cfg, str(tmp_path), force=True).run(["dummy", "table"])
    assert runs("asl") == runs("random") == ["resume", "force"]
    assert os.path.getsize(pipe.pretrained("asl")) == 0  # pretraining, not named, untouched


def test_a_finished_stage_made_with_another_command_is_refused_not_reused(tmp_path, capsys):
    """A rerun into the same folder after a config or override changed would show the old run's numbers under the
    new config: refused with what changed and every stage to redo (the changed one, those reading its results, the
    table), until --force redoes them; moving the folder or running under torchrun changes nothing."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "dummy_task")
    cfg = dict(inits=["asl", "random"], toy=None, title="t", tasks=[os.path.join(folder, "task.py")],
               pretrain=dict(configs=dict(asl="unused.py")), dummy=dict(config="unused.py", overrides=["n=2"]))
    runs = lambda root: open(os.path.join(root, "dummy", "random", "runs.txt")).read().split()  # noqa: E731
    pipe = Pipeline(cfg, str(tmp_path / "a"))
    os.makedirs(os.path.dirname(pipe.pretrained("asl")))
    open(pipe.pretrained("asl"), "w").close()
    _write(pipe.path("pretrain", "asl", "metrics.json"), "pretrain", "asl")  # a pretraining of an older version
    pipe.run(["pretrain", "dummy"])
    records = json.loads(open(pipe.path("step_commands.json")).read())
    assert sorted(records) == ["dummy asl", "dummy random"]  # what ran here, once it succeeded
    capsys.readouterr()
    os.rename(tmp_path / "a", tmp_path / "b")  # the run's folder moved: its own paths in the commands differ
    Pipeline(cfg, str(tmp_path / "b")).run(["pretrain", "dummy"])
    assert capsys.readouterr().out.count("reusing") == 3
    changed = dict(cfg, dummy=dict(config="unused.py", overrides=["n=3"]))
    with pytest.raises(UserError, match=r"dummy asl finished in .* with another command than this config's \(now: "
                                        r"n=3; then: n=2\) \(also dummy random\); `--force --stages dummy,table`"):
        Pipeline(changed, str(tmp_path / "b")).run(["pretrain", "dummy"])
    assert runs(tmp_path / "b") == ["resume"]  # nothing was started
    Pipeline(changed, str(tmp_path / "b"), force=True).run(["dummy"])
    Pipeline(changed, str(tmp_path / "b")).run(["dummy"])  # the forced run's command is the one kept now
    assert runs(tmp_path / "b") == ["resume", "force"]
    # a changed pretraining names the stages reading its checkpoint too
    pipe = Pipeline(changed, str(tmp_path / "b"))
    write_json(pipe.path("step_commands.json"), {**json.loads(open(pipe.path("step_commands.json")).read()),
                                                 "pretrain asl": ["{toolkit}/tools/pretrain.py", "an", "older"]})
    with pytest.raises(UserError, match=r"^pretrain asl finished .*`--force --stages pretrain,dummy,table`"):
        pipe.run(["pretrain", "dummy"])
    under_torchrun = pipe._command_record([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4",
                                           pipe.path("x.py"), "n=3"])
    assert under_torchrun == pipe._command_record([sys.executable, pipe.path("x.py"), "n=3"]) == ["{output}/x.py",
                                                                                                  "n=3"]
    assert pipe._command_record(["python", pipe.work_dir + "_data/x"]) == [pipe.work_dir + "_data/x"]
    with open(pipe.path("step_commands.json"), "a") as f:
        f.write("}")  # a hand edit gone wrong
    with pytest.raises(UserError, match=r"step_commands.json is not valid JSON .*; mend it, or delete it"):
        pipe.run(["pretrain", "dummy"])


def test_the_data_stage_makes_the_probes_own_set_and_their_columns_chance_comes_from_it(tmp_path, capsys):
    """configs/pipeline/toy.py: `probe_toy` is generated beside `toy` by the data stage; the probe columns' chance
    row is the majority object class and all-background mIoU of that set, the other columns' of `toy`."""
    from asl.data.toy import PROBE_FOLDER, chance_levels

    toy = dict(num_unlabeled=2, num_train=3, num_val=4, size=32, seed=0)
    probe_toy = dict(toy, num_unlabeled=0, num_train=5, num_val=9)
    cfg = dict(CFG, toy=toy, probe_toy=probe_toy, tasks=[*BUILTIN], probe=dict(config="unused.py"))
    pipe = Pipeline(cfg, str(tmp_path / "run"), data_root=str(tmp_path / "data"))
    pipe.run(["data"])
    assert sorted(os.listdir(tmp_path / "data")) == sorted(["toy_scenes", PROBE_FOLDER])
    meta = json.loads((tmp_path / "data" / PROBE_FOLDER / "meta.json").read_text())
    assert (meta["num_unlabeled"], meta["num_train"], meta["num_val"]) == (0, 5, 9)
    probe_config = tmp_path / "probe_config.json"  # what the probes' budget line reads
    probe_config.write_text(json.dumps({"probe": {"knn": {"k": 20}, "linear": {"epochs": 100},
                                                  "dense_fit": {"epochs": 8}}}))
    for method in ("asl", "random"):
        path = pipe.path("probe", method, "metrics.json")
        _write(path, "probe", method, knn_top1=50.0, linear_top1=60.0, dense_mIoU=30.0)
        record = json.loads(open(path).read())
        with open(path, "w") as f:
            json.dump(dict(record, config=str(probe_config)), f)
        _write(pipe.path("linprobe", method, "metrics.json"), "linprobe", method, top1=55.0)
    pipe.run(["table"])
    chance = json.loads(open(pipe.path("results", "results.json")).read())["chance"]
    probes, scenes = chance_levels(str(tmp_path / "data" / PROBE_FOLDER)), chance_levels(str(tmp_path / "data" /
                                                                                             "toy_scenes"))
    assert chance == {"kNN top-1": probes["objects_top1"], "linear top-1": probes["objects_top1"],
                      "dense mIoU": probes["mIoU"], "LP top-1": scenes["top1"]}
    assert "frozen-feature probes: their own 5 train / 9 val labeled toy scenes" in capsys.readouterr().out
