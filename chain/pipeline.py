"""From pretraining to a results table: data -> pretrain (ASL, MAE) -> visualize -> convert -> the transfer tasks
(chain.task: detection, segmentation, linear probing, fine-tuning, probes, or any other declared task) -> table,
every transfer stage for each initialisation (ASL, MAE, random) with the same budget. Each step of a stage is a
tool run in its own process; a step whose result exists is reused (one made by another command is refused),
so a rerun continues where the last one stopped. Only file paths, command lines and the tasks' declarations are
known here; no framework is imported.

The steps form a graph (a transfer run needs its encoder converted, random initialisation needs nothing), and
with `jobs` > 1 that many run at once, each with its share of the cores (OMP_NUM_THREADS): on a small CPU, two
one-thread runs of the toy models get through more work than one two-thread run."""
import glob
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from asl.cli import UserError, dataset_root
from asl.records import write_json
from asl.signals import EXIT_PREEMPTED, StopSignals

from .table import collect, write_table
from .task import BUILTIN, iterations_and_epochs, json_seed, load_tasks

CHAIN_STAGES = ("data", "pretrain", "visualize", "convert")  # then the tasks, then "table"
TOOLKIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding chain/, tools/, configs/
PROGRESS_EVERY_S = 60  # with parallel steps: how often the last line of each running step's log is shown


def tool_script(tool: str) -> str:
    """The file of a tool given as a module (`tools.pretrain`, found where it is installed) or a script path."""
    if tool.endswith(".py"):
        return tool
    spec = importlib.util.find_spec(tool)
    if spec is None or not spec.origin:
        raise UserError(f"tool {tool!r} cannot be found (is the toolkit installed?)")
    return os.path.abspath(spec.origin)


def tool_command(tool, nproc: int = 1):
    """The command line of a tool, under torchrun when a stage asks for several processes per node."""
    launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    return [sys.executable, *launcher, tool_script(tool)]


@dataclass
class Step:
    """One tool run of a stage. `done` exists once it has finished; `needs` names the steps it waits for;
    `resumable` tools get --resume (continue an interrupted run) or --force; an `alone` step runs with no other
    and every core (pretraining: the longest step, which most others wait for)."""
    name: str
    stage: str
    cmd: list
    done: str
    needs: tuple = ()
    resumable: bool = True
    quiet: bool = False
    alone: bool = False


def with_dependents(steps, names) -> set:
    """`names` and the names of every step that waits for one of them, through chains of needs."""
    found = set(names)
    for _ in steps:
        found |= {step.name for step in steps if found & set(step.needs)}
    return found


def available_cores() -> int:
    """The cores this process may run on (a SLURM allocation or a cgroup), not the host's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(max(os.path.getsize(path) - 4096, 0))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").replace("\r", "\n").split("\n")]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:160] if lines else ""


class Pipeline:
    def __init__(self, cfg: dict, work_dir: str, data_root: str = None, force: bool = False, jobs: int = None):
        # absolute, so that results.json names files that can be found from anywhere
        self.cfg, self.work_dir, self.data_root, self.force = cfg, os.path.abspath(work_dir), data_root, force
        self.inits = cfg["inits"]  # e.g. ["asl", "mae", "random"]
        self.tasks = load_tasks(cfg.get("tasks") or BUILTIN)  # {stage: Task}; a config may leave one out (None)
        self.stages = (*CHAIN_STAGES, *self.tasks, "table")
        if len(set(self.inits)) != len(self.inits):
            raise UserError(f"inits names an initialisation twice: {self.inits}")
        self.jobs = jobs if jobs is not None else cfg.get("jobs", 1)
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise UserError(f"jobs must be a positive integer, got {self.jobs!r}")
        multi = [stage for stage in self.stages if isinstance(cfg.get(stage), dict) and cfg[stage].get("nproc", 1) > 1]
        if self.jobs > 1 and multi:
            raise UserError(f"jobs={self.jobs} runs steps side by side, which steps of several processes each "
                            f"(nproc > 1: {', '.join(multi)}) cannot share; use jobs=1")
        self.start_first = cfg.get("start_first") or []
        if not isinstance(self.start_first, (list, tuple)):
            raise UserError(f"start_first must be a list of transfer stages, got {self.start_first!r}")
        unknown = [stage for stage in self.start_first if stage not in self.tasks]
        if unknown:
            raise UserError(f"start_first names {', '.join(unknown)}, which is not a transfer stage "
                            f"({', '.join(self.tasks)})")
        self.seconds, self.timeline, self.t0 = {}, [], time.time()  # this invocation's steps

    def path(self, *parts):
        return os.path.join(self.work_dir, *parts)

    def fill(self, stage: str, items) -> list:
        """A stage's overrides or args with `{name}` replaced by the config's `paths.name` (a user's own data);
        a path the stage needs and the config leaves empty is a one-line error. Other `{...}` (the tools' own
        {datasets} and {split}) are left to the tools."""
        paths, out = self.cfg.get("paths") or {}, []
        for item in items:
            for name in re.findall(r"{(\w+)}", item):
                if name not in paths:
                    continue
                if paths[name] in (None, ""):
                    raise UserError(f"{stage} needs paths.{name}: give it on the command line, e.g. "
                                    f"paths.{name}=/data/...")
                item = item.replace(f"{{{name}}}", str(paths[name]))
            out.append(item)
        return out

    @property
    def pretrained_methods(self):
        return [m for m in self.inits if m != "random"]

    def run(self, stages):
        unknown = [s for s in stages if s not in self.stages]
        if unknown:
            raise UserError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(self.stages)}")
        self.t0, self.seconds, self.timeline = time.time(), {}, []  # this invocation's
        try:
            if "data" in stages:
                self._timed("data", self.stage_data)
            steps = []
            for stage in self.stages[1:-1]:
                if stage in stages and stage in self.tasks and self.cfg.get(stage) is None:
                    print(f"[pipeline] === {stage}: not part of this config, skipped ===", flush=True)
                elif stage in stages:
                    steps += self.steps_transfer(self.tasks[stage]) if stage in self.tasks else \
                        {"pretrain": self.steps_pretrain, "visualize": self.steps_visualize,
                         "convert": self.steps_convert}[stage]()
            self.run_steps(self.preferred_order(steps))
            if "table" in stages:
                self._timed("table", self.stage_table)
        finally:  # also after a failure or a preemption: that is the run whose timeline is wanted
            self.write_times(time.time() - self.t0)

    def preferred_order(self, steps):
        """`steps` with pretraining first (every pretrained transfer waits for it), then the stages of
        `start_first` in its order, each with the steps it waits for (a conversion), then the rest in theirs: with
        several steps at once, starting the longest transfers while short ones are left to fill the gaps ends the
        run sooner than the stages' own order."""
        rank = {stage: i for i, stage in enumerate(self.start_first)}
        best = {step.name: min(rank.get(other.stage, len(rank)) for other in steps
                               if other.name in with_dependents(steps, {step.name})) for step in steps}
        return sorted(steps, key=lambda step: (step.stage != "pretrain", best[step.name]))

    def _timed(self, stage, fn):
        print(f"[pipeline] === {stage} ===", flush=True)
        start = time.time()
        fn()
        self.seconds[stage] = time.time() - start
        print(f"[pipeline] {stage} took {self.seconds[stage]:.0f} s", flush=True)

    def write_times(self, wall_s):
        """step_times.json: seconds per step, added up over the invocations that ran it (a forced step starts
        from 0); stage_times.json: their sums per stage; timeline.json: this invocation's wall time and when each
        of its steps started and ended (seconds from its start)."""
        steps_file = self.path("step_times.json")
        totals = {}
        if os.path.exists(steps_file):
            with open(steps_file) as f:
                totals = json.load(f)
        for name, seconds in self.seconds.items():
            totals[name] = seconds + (0.0 if self.force or name in ("data", "table") else totals.get(name, 0.0))
        stages = {}
        for name, seconds in totals.items():
            stages[name.split()[0]] = stages.get(name.split()[0], 0.0) + seconds
        os.makedirs(self.work_dir, exist_ok=True)
        write_json(steps_file, totals)
        write_json(self.path("stage_times.json"), stages)
        write_json(self.path("timeline.json"), {"wall_s": wall_s, "jobs": self.jobs, "steps": self.timeline})

    # -- running steps -----------------------------------------------------------------------------------------

    def _reused(self, step):
        if os.path.exists(step.done) and not self.force:
            print(f"[pipeline] {step.name}: reusing {step.done}", flush=True)
            return True
        return False

    def refuse_changed(self, steps):
        """A finished run whose command has changed since (a config file, an override, a seed) would put its old
        numbers under the new settings: one error naming every such step and the stages to redo, theirs and those
        of the steps that read their results."""
        if self.force:
            return
        records = self._commands()
        changed = [step for step in steps if step.resumable and os.path.exists(step.done) and step.name in records
                   and records[step.name] != self._command_record(step.cmd)]
        if not changed:
            return
        stale = with_dependents(steps, {step.name for step in changed})
        stages = [stage for stage in self.stages if any(s.stage == stage and s.name in stale for s in steps)]
        then, now = records[changed[0].name], self._command_record(changed[0].cmd)
        what = "; ".join(f"{when}: {' '.join(a for a in args if a not in other)}"
                         for when, args, other in (("now", now, then), ("then", then, now))
                         if set(args) - set(other)) or "the same arguments in another order"
        also = f" (also {', '.join(step.name for step in changed[1:])})" if changed[1:] else ""
        raise UserError(f"{changed[0].name} finished in {self.work_dir} with another command than this config's "
                        f"({what}){also}; `--force --stages {','.join([*stages, 'table'])}` redoes it and what "
                        "reads its results, or give another --output-dir")

    def _command_record(self, cmd) -> list:
        """A step's command as step_commands.json keeps it: the interpreter and the launcher left out (how many
        processes run a step does not change what it computes), the run's folder and the toolkit's written as
        {output} and {toolkit}, so that moving either is not a change."""
        args = cmd[4:] if cmd[1:3] == ["-m", "torch.distributed.run"] else cmd[1:]
        for path, name in ((self.work_dir, "{output}"), (TOOLKIT, "{toolkit}")):
            args = [re.sub(re.escape(path) + r"(?=/|$)", name, arg) for arg in args]
        return args

    def _commands(self) -> dict:
        path = self.path("step_commands.json")
        if not os.path.exists(path):
            return {}  # runs of a version that kept no record: nothing to compare
        try:
            with open(path) as f:
                return json.load(f)
        except json.JSONDecodeError as err:  # edited by hand to accept a change (docs/pipeline.md)
            raise UserError(f"{path} is not valid JSON ({err}); mend it, or delete it to compare no command") from None

    def _start(self, step):
        cmd = [*step.cmd, "--force" if self.force else "--resume"] if step.resumable else step.cmd
        env = dict(os.environ, **({"ASL_DATASETS": self.data_root} if self.data_root else {}))
        log, out = None, subprocess.DEVNULL if step.quiet else None
        if self.jobs > 1:
            if not step.alone:
                env.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // self.jobs)))
            log = self.path("logs", step.name.replace(" ", "_") + ".log")
            os.makedirs(os.path.dirname(log), exist_ok=True)
            out = open(log, "a")  # a rerun keeps the failed attempt's lines above its own
            out.write(f"[pipeline] {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(cmd)}\n")
            out.flush()
        print(f"[pipeline] {step.name}: {' '.join(cmd[1:])}" + (f"  (log: {log})" if log else ""), flush=True)
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if log else None)
        finally:
            if log:
                out.close()
        return dict(proc=proc, log=log, start=time.time() - self.t0)

    def run_steps(self, steps, on_finish=None):
        """Run `steps` (in order of preference), at most `jobs` at once, each when the steps it needs are done;
        `on_finish(step)` is called after each that finishes.
        A failure or a preemption (status 75) starts nothing new and the running steps finish first; a stop signal
        to the pipeline is passed on to them (they checkpoint and exit 75)."""
        names = {s.name for s in steps}
        self.refuse_changed(steps)
        pending = [s for s in steps if not self._reused(s)]
        finished = names - {s.name for s in pending}
        running, failed, preempted, passed_on = {}, [], False, False
        signals = StopSignals()
        last_progress, clean = time.time(), False
        try:
            while pending or running:
                while not (failed or preempted or signals.received) and len(running) < self.jobs:
                    ready = next((s for s in pending if all(n in finished or n not in names for n in s.needs)),
                                 None)
                    alone_running = any(step.alone for step, _ in running.values())
                    if ready is None or alone_running or (ready.alone and running):
                        break
                    pending.remove(ready)
                    running[ready.name] = (ready, self._start(ready))
                if not running:
                    break
                if signals.received and not passed_on:
                    for _, info in running.values():
                        info["proc"].send_signal(getattr(signal, signals.received))
                    passed_on = True
                time.sleep(0.2)
                for name, (step, info) in list(running.items()):
                    code = info["proc"].poll()
                    if code is None:
                        continue
                    del running[name]
                    end = time.time() - self.t0
                    self.seconds[name] = end - info["start"]
                    self.timeline.append(dict(step=name, start_s=round(info["start"], 1), end_s=round(end, 1),
                                              status=code))
                    if code == EXIT_PREEMPTED:
                        preempted = True
                    elif code or not os.path.exists(step.done):
                        failed.append((step, info["log"], code))
                    else:
                        finished.add(name)
                        if step.resumable:  # the command its result now belongs to (kept once it succeeded)
                            write_json(self.path("step_commands.json"),
                                       {**self._commands(), name: self._command_record(step.cmd)})
                        print(f"[pipeline] {name} finished in {end - info['start']:.0f} s", flush=True)
                        if on_finish:
                            on_finish(step)
                if running and self.jobs > 1 and time.time() - last_progress >= PROGRESS_EVERY_S:
                    last_progress = time.time()
                    for name, (_, info) in running.items():
                        line = _last_line(info["log"])
                        if line:
                            print(f"[pipeline] {name} ({time.time() - self.t0 - info['start']:.0f} s): {line}",
                                  flush=True)
            clean = True
        finally:
            signals.close()
            if not clean:  # an error of the pipeline itself: no step is left running unwatched
                for _, info in running.values():
                    info["proc"].terminate()
                for _, info in running.values():
                    info["proc"].wait()
        for _, log, _ in failed:
            if log:
                with open(log, errors="replace") as f:
                    print(f"[pipeline] the end of {log}:\n" + "".join(f.readlines()[-30:]), file=sys.stderr)
        if preempted or signals.received:
            if failed:
                print(f"[pipeline] failed before the stop: {', '.join(step.name for step, _, _ in failed)}",
                      file=sys.stderr)
            print("[pipeline] stopped at a checkpoint (preempted); rerun the same command to continue",
                  file=sys.stderr, flush=True)
            sys.exit(EXIT_PREEMPTED)
        if failed:
            step, log, code = failed[0]
            where = f"its log: {log}" if log else "its output is above"
            what = f"finished without writing {step.done}" if code == 0 else "failed"
            raise UserError(f"stage '{step.name}' {what} ({where}); fix it and rerun: finished stages are reused "
                            "and an interrupted one continues from its checkpoint")
        if pending:
            waiting = "; ".join(f"{s.name} (needs {', '.join(n for n in s.needs if n not in finished)})"
                                for s in pending)
            raise UserError(f"steps whose needs were never met: {waiting}")

    # -- the stages --------------------------------------------------------------------------------------------

    @property
    def toy_root(self):
        return os.path.join(self.data_root or dataset_root(), "toy_scenes")

    @property
    def probe_toy_root(self):
        from asl.data.toy import PROBE_FOLDER

        return os.path.join(self.data_root or dataset_root(), PROBE_FOLDER)

    def pretrained(self, method):
        return self.path("pretrain", method, "checkpoints", "last.pth")

    def stage_data(self):
        """The toy scenes (`toy`) and the probes' labeled toy scenes (`probe_toy`), each generated once here rather
        than by the stages starting together, one set after the other, each shared by `jobs` processes (the
        probes' set is much the larger: the two sets side by side kept one core idle most of the stage)."""
        from asl.data.toy import ensure_toy_scenes

        for key, root in (("toy", self.toy_root), ("probe_toy", self.probe_toy_root)):
            if self.cfg.get(key):
                meta = ensure_toy_scenes(root, require_match=True, workers=self.jobs, **self.cfg[key])
                print(f"[pipeline] toy scenes in {root}: {meta['num_unlabeled']} unlabeled, {meta['num_train']} "
                      f"train / {meta['num_val']} val labeled", flush=True)

    def seed_override(self, key: str) -> list:
        """`key=seed` when the config sets `seed` (every stage's training seed, e.g. seed=1 on the command line),
        else nothing: each tool keeps its config's own seed."""
        seed = self.cfg.get("seed")
        return [] if seed is None else [f"{key}={seed}"]

    def steps_pretrain(self):
        p = self.cfg["pretrain"]
        return [Step(f"pretrain {m}", "pretrain",
                     tool_command("tools.pretrain", p.get("nproc", 1)) + [
                         p["configs"][m], *self.fill("pretrain", p.get("overrides", [])),
                         *self.seed_override("runtime.seed"),
                         *self.fill("pretrain", p.get("args", [])), "--output-dir", self.path("pretrain", m)],
                     self.path("pretrain", m, "metrics.json"), alone=p.get("alone", True))
                for m in self.pretrained_methods]

    def steps_visualize(self):
        """Reconstructions of every pretrained model on the same images (config `visualize.images`, default: the
        first four toy val scenes) and the loss curves of all pretraining runs side by side."""
        images = self.cfg.get("visualize", {}).get("images")
        if not images and self.cfg.get("toy"):
            val = os.path.join(self.toy_root, "coco", "val")
            images = [os.path.join(val, f) for f in sorted(os.listdir(val))[:4]] if os.path.isdir(val) else []
        if not images:
            print("[pipeline] visualize: no images configured (visualize.images); skipped", flush=True)
            return []
        methods = self.pretrained_methods
        return [Step(f"visualize {m}", "visualize",
                     tool_command("tools.visualize") + [self.pretrained(m), *images, "--out", self.path("figures", m),
                                              *[a for o in methods if o != m
                                                for a in ("--log", self.path("pretrain", o, "log.jsonl"))]],
                     self.path("figures", m, "reconstructions.png"), tuple(f"pretrain {o}" for o in methods),
                     resumable=False) for m in methods]

    def convert_targets(self):
        """The frameworks whose files the configured transfer stages read."""
        targets = [t.init for name, t in self.tasks.items() if t.init != "checkpoint" and self.cfg.get(name)]
        return list(dict.fromkeys(targets))

    def steps_convert(self):
        return [Step(f"convert {m} {t}", "convert",
                     tool_command("tools.convert_ckpt") + [self.pretrained(m), "--to", t, "-o", self.converted(m, t)],
                     self.converted(m, t), (f"pretrain {m}",), resumable=False, quiet=True)
                for m in self.pretrained_methods for t in self.convert_targets()]

    def converted(self, method, target):
        return self.path("converted", f"{method}_{target}.pth")

    def steps_transfer(self, task):
        """One step per initialisation: a pretrained one reads the pretraining checkpoint or its conversion (the
        task's `init`) and waits for it; random initialisation needs nothing."""
        c = self.cfg[task.name]
        steps = []
        for m in self.inits:
            if m == "random":
                init_args, needs = [], ()
            elif task.init == "checkpoint":
                init_args, needs = ["--init", self.pretrained(m), "--init-name", m], (f"pretrain {m}",)
            else:
                init_args = ["--init", self.converted(m, task.init), "--init-name", m]
                needs = (f"convert {m} {task.init}",)
            cmd = tool_command(task.tool, c.get("nproc", 1)) + [
                c["config"], *self.fill(task.name, c.get("overrides", [])), *self.seed_override(task.seed_key),
                *init_args, "--output-dir", self.path(task.name, m), *(task.extra_args(c) if task.extra_args else []),
                *self.fill(task.name, c.get("args", []))]
            steps.append(Step(f"{task.name} {m}", task.name, cmd, self.path(task.name, m, "metrics.json"), needs))
        return steps

    def stage_table(self):
        files = [self.path(stage, m, "metrics.json") for stage in self.tasks for m in self.inits]
        files = [f for f in files if os.path.exists(f)]
        if not files:
            raise UserError(f"no transfer results under {self.work_dir} yet; run the transfer stages first")
        chance = {}
        for key, root, prefix in (("toy", self.toy_root, ""), ("probe_toy", self.probe_toy_root, "probe_")):
            if self.cfg.get(key) and os.path.isdir(os.path.join(root, "coco")):
                from asl.data.toy import chance_levels

                chance.update({prefix + k: v for k, v in chance_levels(root).items()})
            elif self.cfg.get(key):  # the table of runs made elsewhere: without the scenes there is no chance row
                print(f"[pipeline] no toy scenes under {root}: the table's chance row leaves them out", flush=True)
        columns = [(name, *column) for name, task in self.tasks.items() for column in task.columns]
        paths = write_table(collect(files, columns), self.path("results", "results"), columns,
                            self.cfg.get("title", ""), chance, self.budget_lines())
        with open(paths["markdown"]) as f:
            print("\n" + f.read(), flush=True)
        print("[pipeline] results: " + ", ".join(paths.values()), flush=True)
        figures = sorted(glob.glob(self.path("figures", "*", "*.png")))
        if figures:
            print("[pipeline] figures: " + ", ".join(figures), flush=True)
        runs = [self.path(stage) for stage in self.stages if os.path.isdir(self.path(stage))]
        print("[pipeline] run directories (logs, checkpoints, metrics.json): " + ", ".join(runs), flush=True)
        return paths

    def _run_seed(self, stage, config_path):
        """The training seed in a run's saved config, read the way its task declares; None when unknown."""
        if not config_path or not os.path.exists(config_path):
            return None
        if stage == "pretrain":
            return json_seed(config_path)
        task = self.tasks[stage]
        return task.seed_of(config_path) if task.seed_of else None

    def budget_lines(self):
        """What the table's numbers were trained with, read from the runs' own records: lengths per stage (one
        entry when every initialisation had the same), the data, the seeds."""
        lines, seeds = [], set()
        titles = [("pretrain", "pretraining", iterations_and_epochs)] + [
            (name, task.title or name, task.budget_of or iterations_and_epochs) for name, task in self.tasks.items()]
        for stage, label, budget_of in titles:
            records = {}
            for m in self.pretrained_methods if stage == "pretrain" else self.inits:
                path = self.path(stage, m, "metrics.json")
                if os.path.exists(path):
                    with open(path) as f:
                        records[m] = json.load(f)
                    seeds.add(self._run_seed(stage, records[m].get("config")))
            lengths = {m: budget_of(r) for m, r in records.items()}
            if len(lengths) == 1:
                lines.append(f"{label}: {next(iter(lengths.values()))}")
            elif len(set(lengths.values())) == 1:
                every = "pretraining method" if stage == "pretrain" else "initialisation"
                lines.append(f"{label}: {next(iter(lengths.values()))} for every {every}")
            elif lengths:
                lines.append(f"{label}: " + ", ".join(f"{m} {v}" for m, v in lengths.items()))
        toy = self.cfg.get("toy")
        if toy:
            lines.append(f"data: toy scenes (generator seed {toy['seed']}, {toy['size']} px): "
                         f"{toy['num_unlabeled']:,} unlabeled for pretraining, {toy['num_train']} train / "
                         f"{toy['num_val']} val labeled scenes; every number is on the val scenes")
        probe_toy = self.cfg.get("probe_toy")
        if toy and probe_toy and "probe" in self.tasks:
            lines.append(f"frozen-feature probes: their own {probe_toy['num_train']:,} train / "
                         f"{probe_toy['num_val']:,} val labeled toy scenes (the first {toy['num_train']} / "
                         f"{toy['num_val']} are the ones above)")
        seeds.discard(None)
        if seeds:
            lines.append(f"training seed: {', '.join(str(s) for s in sorted(seeds))} (one run per cell)")
        return lines

