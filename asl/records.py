"""The records every run writes: metrics.json (docs/conventions.md), the initialisation record init.json, and the
one atomic JSON writer behind them and behind the resolved configs."""
import json
import os

INIT_FILE = "init.json"  # a run's initialisation record, kept beside its checkpoints for --resume / --eval-only


def write_json(path: str, obj):
    """Write `obj` as JSON atomically (temp file + rename): a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:  # a failed write (an object JSON cannot hold, a full disk) leaves the old file and no temp file
        if os.path.exists(tmp):
            os.remove(tmp)


def metrics_record(stage: str, dataset: str, init: dict, model: str, metrics: dict, iterations: int, epochs,
                   wall_time_s: float, config: str, **extra) -> dict:
    """The metrics.json record every stage writes (docs/conventions.md); `extra` adds a stage's own fields."""
    return {"stage": stage, "dataset": dataset, "init": init, "model": model, "metrics": metrics,
            "iterations": iterations, "epochs": epochs, "wall_time_s": wall_time_s, "config": config, **extra}


def write_init(run_dir: str, init: dict):
    write_json(os.path.join(run_dir, INIT_FILE), init)


def read_init(*run_dirs):
    """The first initialisation record (init.json) found in `run_dirs`, or None."""
    for run_dir in run_dirs:
        path = os.path.join(run_dir, INIT_FILE)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return None
