"""A sweep of one pretraining config key: for each value and seed, pretrain with the same budget, evaluate the
encoder with one or several transfer tools, and tabulate each metric's mean ± std over seeds, every number read
from a metrics.json. Each (value, seed) runs as a small pipeline of its own (tools/run_pipeline.py on a config
written into its directory: each tool a subprocess, a finished run reused on a rerun, an interrupted one resumed),
and `jobs` of them run at once, each with its share of the cores; an optional baseline config (MAE) is a row with
the same budget and seeds."""
import json
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass

from asl.cli import UserError, did_you_mean
from asl.config import apply_overrides, load_config
from asl.records import write_json

from .pipeline import Pipeline, Step, tool_command
from .task import BUILTIN, load_tasks

REPO = os.getcwd()  # paths under the directory the sweep runs from are shown relative to it
SPEC_FILE = "sweep_spec.json"  # what a work directory's runs were made with: a rerun must match it
POINT_CONFIG = "sweep_point.py"  # in each (value, seed) directory: the pipeline config that run is made with


def _spread(numbers: list) -> dict:
    return {"mean": statistics.mean(numbers) if numbers else None,
            "std": statistics.stdev(numbers) if len(numbers) > 1 else None}


def split_values(text: str) -> list:
    """'0.1,1,(0.9,0.95)' -> ['0.1', '1', '(0.9,0.95)']: commas inside brackets or quotes do not split."""
    values, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    return [v.strip() for v in values + [text[start:]]]


def parse_sweep(item: str) -> tuple:
    """'key=v1,v2' -> (key, [v1, v2]); one-line errors for a missing '=', an empty or a repeated value."""
    if "=" not in item:
        raise UserError(f"the sweep {item!r} is not key=v1,v2,... (e.g. model.temperature=0.1,1,10)")
    key, text = item.split("=", 1)
    values = split_values(text)
    if not text.strip() or "" in values:
        raise UserError(f"the sweep {item!r} has an empty value; list the values separated by commas, e.g. "
                        f"{key}=0.1,1,10")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise UserError(f"the sweep {item!r} lists {', '.join(repeated)} more than once")
    return key, values


def twin_config(config: str) -> str:
    """The MAE twin of an ASL pretraining config: toy_asl.py -> toy_mae.py, vitb_coco_asl_800ep.py ->
    vitb_coco_mae_800ep.py."""
    folder, name = os.path.split(config)
    twin = os.path.join(folder, re.sub(r"(^|_)asl(_|\.)", r"\1mae\2", name))
    if twin == config or not os.path.isfile(twin):
        raise UserError(f"--baseline mae: {config} has no MAE twin ({twin} does not exist); give the baseline's "
                        "config path instead, e.g. --baseline configs/pretrain/toy_mae.py")
    return twin


def _as_path(spec: str) -> str:
    """A task module given as a file, made absolute (a run's config, written into its directory, may be rerun from
    anywhere); a module name as it is."""
    return os.path.abspath(spec) if spec.endswith(".py") else spec


def _safe(value: str) -> str:
    return re.sub(r"[^\w.+-]", "_", value)


@dataclass
class Sweep:
    """One sweep: `key` at each of `values` on `config`, `fixed` overrides shared by every run (the budget), each
    encoder evaluated by every task of `evals` (in table order) with its `eval_configs[task]` +
    `eval_overrides[task]`, for each seed. The first task's first metric is the headline (`mean`, `std`)."""

    config: str
    key: str
    values: list
    fixed: list
    evals: list
    eval_configs: dict
    eval_overrides: dict
    seeds: list
    baseline: str = None  # a pretraining config run with `fixed` (not the swept key), or None
    random: bool = False  # a row of randomly initialised encoders (the evaluation's seed draws the weights)
    work_dir: str = "."
    nproc: int = 1
    jobs: int = 1  # (value, seed) runs at once, each with its share of the cores
    task_modules: tuple = ()  # task modules beyond the built-in ones (chain.task.load_tasks), e.g. a test folder's

    def __post_init__(self):
        self.config, self.work_dir = os.path.abspath(self.config), os.path.abspath(self.work_dir)
        self.baseline = self.baseline and os.path.abspath(self.baseline)
        tasks = load_tasks((*BUILTIN, *self.task_modules))
        for name in self.evals:
            if name not in tasks:
                raise UserError(f"unknown evaluation {name!r}{did_you_mean(name, tasks)}; known: "
                                f"{', '.join(tasks)} (a task of your own: --task its task.py)")
        if not self.evals or len(set(self.evals)) < len(self.evals):
            raise UserError(f"--eval names each task once, e.g. probe,finetune; got {','.join(self.evals)!r}")
        if set(self.eval_configs) != set(self.evals):
            raise UserError(f"the evaluation configs are for {', '.join(self.eval_configs) or 'no task'}, the "
                            f"evaluations are {', '.join(self.evals)}")
        self.eval_configs = {name: os.path.abspath(self.eval_configs[name]) for name in self.evals}
        self.eval_overrides = {name: list(self.eval_overrides.get(name, [])) for name in self.evals}
        self.tasks = [tasks[name] for name in self.evals]
        # the pipeline runs a point's tasks in their declared order: the last of them finishes the point
        self.last_eval = max(self.evals, key=list(tasks).index)
        self.metric = self.column(self.tasks[0], self.tasks[0].metric)

    @staticmethod
    def column(task, key: str) -> str:
        """A metric's name in the table: its task and key, e.g. 'finetune.top1' (two tasks may share a key)."""
        return f"{task.name}.{key}"

    def check(self):
        """Every run's config resolves (a bad key is a one-line error with its closest match) before any runs."""
        if self.key in ("runtime.seed", *(task.seed_key for task in self.tasks)):
            raise UserError(f"sweep seeds with --seeds or --seed-list, not as {self.key}")
        if any(o.split("=", 1)[0] == self.key for o in self.fixed):
            raise UserError(f"{self.key} is both swept and fixed; give it once")
        if not self.seeds:
            raise UserError("no seeds: give --seeds N (N >= 1) or --seed-list 0,1,2")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise UserError(f"--jobs must be a positive integer, got {self.jobs!r}")
        if self.jobs > 1 and self.nproc > 1:
            raise UserError(f"--jobs {self.jobs} runs side by side, which runs of --nproc {self.nproc} processes "
                            "each cannot share; use --jobs 1")
        cfg = load_config(self.config)
        for value in self.values:
            apply_overrides(cfg, [*self.fixed, f"{self.key}={value}"])
        if len({_safe(v) for v in self.values}) < len(self.values):
            raise UserError(f"the values {', '.join(self.values)} name the same run directories; write them apart")
        if self.baseline:
            apply_overrides(load_config(self.baseline), self.fixed)
        for task in self.tasks:
            if task.checks_config:  # a framework's config is checked by its own tool
                apply_overrides(load_config(self.eval_configs[task.name]),
                                [*self.eval_overrides[task.name], f"{task.seed_key}=0"])

    def rows(self) -> list:
        """(label, swept value or None, pretraining config, overrides, its method, directory) of each row."""
        rows = [(f"{self.key}={v}", v, self.config, [*self.fixed, f"{self.key}={v}"],
                 os.path.join(self.work_dir, f"{self.key}={_safe(v)}")) for v in self.values]
        if self.baseline:
            name = os.path.splitext(os.path.basename(self.baseline))[0]
            rows.append((f"baseline {name}", None, self.baseline, list(self.fixed),
                         os.path.join(self.work_dir, f"baseline_{name}")))
        rows = [(label, value, config, overrides,
                 apply_overrides(load_config(config), overrides)["model"]["method"], row_dir)
                for label, value, config, overrides, row_dir in rows]
        if self.random:
            rows.append(("random init", None, None, [], "random", os.path.join(self.work_dir, "random_init")))
        return rows

    def claim_work_dir(self):
        """Record the settings in the work directory; a rerun with other settings (whose reused runs would mix
        two budgets) is refused. Values and seeds may be added."""
        spec = {k: v for k, v in asdict(self).items()
                if k not in ("values", "seeds", "work_dir", "nproc", "jobs", "task_modules")}
        path = os.path.join(self.work_dir, SPEC_FILE)
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            changed = sorted(k for k in set(saved) | set(spec) if saved.get(k) != spec.get(k))
            if changed:
                raise UserError(f"{self.work_dir} holds a sweep made with other {', '.join(changed)}; its runs "
                                "would be reused with these settings: give another --output-dir")
        write_json(path, spec)

    def point_step(self, row, seed: int, stages: list) -> Step:
        """The pipeline of one (row, seed): its config written into its directory, run by tools/run_pipeline.py
        (a finished point is reused; an interrupted one continues inside, stage by stage)."""
        label, _, config, overrides, method, row_dir = row
        point_dir = os.path.join(row_dir, f"seed{seed}")
        cfg = {"inits": [method], "toy": None, "tasks": [*BUILTIN, *map(_as_path, self.task_modules)],
               **{task.name: dict(config=self.eval_configs[task.name], nproc=self.nproc,
                                  overrides=[*self.eval_overrides[task.name], f"{task.seed_key}={seed}"])
                  for task in self.tasks}}
        if config:
            cfg["pretrain"] = dict(configs={method: config}, overrides=[*overrides, f"runtime.seed={seed}"],
                                   nproc=self.nproc)
        os.makedirs(point_dir, exist_ok=True)
        config_file = os.path.join(point_dir, POINT_CONFIG)
        with open(config_file, "w") as f:
            f.write(f"# {label}, seed {seed}: written by tools/sweep.py, which runs it\ncfg = {cfg!r}\n")
        return Step(f"{os.path.basename(row_dir)} seed{seed}", "sweep",
                    tool_command("tools.run_pipeline") + [config_file, "--output-dir", point_dir,
                                                          "--stages", ",".join(stages if config else self.evals)],
                    os.path.join(point_dir, self.last_eval, method, "metrics.json"), resumable=False)

    def run(self, data_root: str = None, out: str = None) -> dict:
        """Every (row, seed) not finished yet, `jobs` at once, in the order seed by seed so that a stopped sweep
        has every row at the first seeds; the table is rewritten after each, with the time left. Returns the
        table's paths."""
        self.check()
        self.claim_work_dir()
        converts = any(task.init != "checkpoint" for task in self.tasks)
        stages = ["pretrain", *(["convert"] if converts else []), *self.evals]
        steps = [self.point_step(row, seed, stages) for seed in self.seeds for row in self.rows()]
        scheduler = Pipeline({"inits": []}, self.work_dir, data_root, jobs=self.jobs)
        todo = sum(not os.path.exists(step.done) for step in steps)
        done, start = 0, time.time()

        def finished(step):
            nonlocal done
            done += 1
            elapsed = time.time() - start
            self.write_table(out)
            print(f"[sweep] {done}/{todo} runs done ({step.name}); {elapsed / 60:.0f} min so far, about "
                  f"{elapsed / done * (todo - done) / 60:.0f} min left", flush=True)

        print(f"[sweep] {len(steps)} runs ({len(steps) - todo} finished before), {self.jobs} at once", flush=True)
        self.write_table(out)
        try:
            scheduler.run_steps(steps, on_finish=finished)
        finally:  # timeline.json: when each run started and ended, also after a failure or a stop
            scheduler.write_times(time.time() - scheduler.t0)
        return self.write_table(out)

    def table(self) -> list:
        """The rows with every finished seed's metrics (each column of each task, as '<task>.<key>') and their
        metrics.json files; mean and sample std over seeds, of the headline metric (`mean`, `std`) and of every
        column (`columns`)."""
        keys = [(task, key) for task in self.tasks for key, _, _ in task.columns]
        table = []
        for label, value, config, overrides, method, row_dir in self.rows():
            runs = []
            for seed in self.seeds:
                run_dir = os.path.join(row_dir, f"seed{seed}")
                sources = {task.name: os.path.join(run_dir, task.name, method, "metrics.json") for task in self.tasks}
                if not all(map(os.path.exists, sources.values())):
                    continue  # not finished (yet)
                run = {"seed": seed}
                for task in self.tasks:
                    with open(sources[task.name]) as f:
                        metrics = json.load(f)["metrics"]
                    run.update({self.column(task, key): metrics[key] for key, _, _ in task.columns if key in metrics})
                runs.append({**run, "metrics_json": sources, "pretrain_metrics_json":
                             os.path.join(run_dir, "pretrain", method, "metrics.json") if config else None})
            columns = {self.column(task, key): _spread([r[self.column(task, key)] for r in runs
                                                         if self.column(task, key) in r]) for task, key in keys}
            table.append({"run": label, "value": value, "pretrain_config": config, "overrides": overrides,
                          "n": len(runs), **columns[self.metric], "columns": columns, "runs": runs})
        return table

    def write_table(self, out: str = None) -> dict:
        """OUT.md and OUT.json (default OUT: <work dir>/table); returns their paths."""
        out = out or os.path.join(self.work_dir, "table")
        rows = self.table()
        show = lambda p: os.path.relpath(p, REPO) if p.startswith(REPO + os.sep) else p  # noqa: E731
        evaluations = "; ".join(f"{name} with `{' '.join([show(self.eval_configs[name]), *self.eval_overrides[name]])}`"
                                for name in self.evals)
        labels = [(self.column(task, key), label) for task in self.tasks for key, label, _ in task.columns]
        lines = [f"Sweep of `{self.key}` on `{show(self.config)}` "
                 f"({' '.join(self.fixed) or 'no fixed overrides'}), seeds {', '.join(map(str, self.seeds))}; "
                 f"{evaluations}. Mean ± sample std over seeds; every number is read from the "
                 f"metrics.json files named in `{os.path.basename(out)}.json`.", "",
                 "| run | " + " | ".join(label for _, label in labels) + f" | seeds done | {self.metric} per seed |",
                 "|---|" + "---|" * (len(labels) + 2)]
        for row in rows:
            cells = []
            for key, _ in labels:
                spread = row["columns"][key]
                cells.append("—" if spread["mean"] is None else f"{spread['mean']:.1f}" + (
                    f" ± {spread['std']:.1f}" if spread["std"] is not None else ""))
            per_seed = ", ".join(f"{r[self.metric]:.1f}" for r in row["runs"] if self.metric in r) or "—"
            lines.append(f"| {row['run']} | " + " | ".join(cells) + f" | {row['n']}/{len(self.seeds)} | {per_seed} |")
        paths = {"markdown": out + ".md", "json": out + ".json"}
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(paths["markdown"], "w") as f:
            f.write("\n".join(lines) + "\n")
        write_json(paths["json"], {**{k: v for k, v in asdict(self).items() if k != "work_dir"},
                                   "metric": self.metric, "std": "sample (n - 1)", "rows": rows})
        return paths
