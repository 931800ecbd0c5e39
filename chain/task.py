"""What the chain (pipeline, sweep, results table) knows of a transfer task, declared once by the task itself.

A task lives in its own folder (transfer/detection/, transfer/segmentation/, ...) whose `task.py` defines
`TASKS = [Task(...), ...]`. A pipeline config lists the task modules it runs (`tasks`, default `BUILTIN`) by
module name or file path, so a new task is one folder plus one line: nothing here or in the pipeline changes.
"""
import importlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field

from asl.cli import UserError

BUILTIN = ("transfer.probe.task", "transfer.classification.task", "transfer.detection.task",
           "transfer.segmentation.task")


@dataclass
class Task:
    """One transfer stage.

    name: the stage name, its key in a pipeline config and its folder in a pipeline's directory.
    tool: the command line tool, a module (`tools.train_det`, run with `python -m`) or a script path.
    init: what the tool's `--init` reads: "checkpoint" (the pretraining checkpoint as it is) or the name of a
        conversion target of tools/convert_ckpt.py ("detectron2", "mmseg").
    columns: (metric key in metrics.json, column label, key of the chance level or None), in table order.
    seed_key: the override that sets the task's training seed in its own config.
    seed_of: reads the seed from a run's saved config file (None when it has none).
    toy_config, toy_overrides: the toy protocol, the sweep's default evaluation (paths relative to the repo).
    extra_args: the tool's further arguments from the stage's pipeline config (e.g. detection's --num-gpus).
    checks_config: the config is one of ours (asl.config), which the chain checks before starting any run.
    title: the stage in words, for the table's budget lines (default: its name).
    budget_of: a run's budget in words, from its metrics.json record (default: its iterations and epochs).
    """
    name: str
    tool: str
    init: str
    columns: list
    seed_key: str
    seed_of: callable = None
    toy_config: str = None
    toy_overrides: list = field(default_factory=list)
    extra_args: callable = None
    checks_config: bool = True
    title: str = None
    budget_of: callable = None

    @property
    def metric(self) -> str:
        """The task's headline metric (its first column): what a sweep tabulates."""
        return self.columns[0][0]


def iterations_and_epochs(record: dict) -> str:
    """The default budget: what the run's metrics.json says it trained, e.g. '1,000 iterations (25 epochs)'."""
    epochs = record.get("epochs")
    return f"{record['iterations']:,} iterations" + (f" ({epochs:g} epochs)" if epochs is not None else "")


def json_seed(config_path: str):
    """runtime.seed of a run's resolved JSON config (our own tools)."""
    with open(config_path) as f:
        return json.load(f).get("runtime", {}).get("seed")


def regex_seed(pattern: str):
    """A seed reader for a framework's saved config text: the first group of `pattern` (multi-line)."""
    def read(config_path):
        with open(config_path) as f:
            found = re.search(pattern, f.read(), re.M)
        return int(found.group(1)) if found else None
    return read


def _load_module(spec: str):
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise UserError(f"task file {spec!r} does not exist")
        module_spec = importlib.util.spec_from_file_location(f"chain_task_{abs(hash(spec))}", spec)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        module.__file__ = os.path.abspath(spec)
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as err:
        raise UserError(f"task module {spec!r} cannot be imported ({err})") from None


def load_tasks(specs=BUILTIN) -> dict:
    """{stage name: Task} of the task modules `specs`, in order; a script tool given as a relative path is
    resolved against its task file's folder."""
    tasks = {}
    for spec in specs:
        module = _load_module(spec)
        declared = getattr(module, "TASKS", None)
        if not declared or not all(isinstance(t, Task) for t in declared):
            raise UserError(f"task module {spec!r} does not define TASKS = [Task(...), ...]")
        for task in declared:
            if task.name in tasks:
                raise UserError(f"two task modules declare the task {task.name!r}")
            if task.tool.endswith(".py") and not os.path.isabs(task.tool):
                task.tool = os.path.join(os.path.dirname(module.__file__), task.tool)
            tasks[task.name] = task
    return tasks
