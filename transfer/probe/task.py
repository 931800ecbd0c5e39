"""The frozen-feature probes as the chain sees them (chain.task): tools/probe.py reads the pretraining checkpoint
itself and writes kNN top-1, linear top-1 (on the toy scenes: of objects) and dense-probe mIoU in one
metrics.json."""
import json

from chain.task import Task, json_seed


def probe_budget(record: dict) -> str:
    """What the probes fit on the frozen encoder, from the run's saved config (they train no encoder iterations)."""
    with open(record["config"]) as f:
        probe = json.load(f)["probe"]
    return (f"frozen encoder; kNN k={probe['knn']['k']}, linear probe {probe['linear']['epochs']} epochs, dense "
            f"linear probe {probe['dense_fit']['epochs']} epochs")

TASKS = [Task(
    name="probe", title="frozen-feature probes", tool="tools.probe", init="checkpoint",
    # chance: of the probes' own labeled toy scenes (the pipeline's `probe_toy`)
    columns=[("knn_top1", "kNN top-1", "probe_objects_top1"), ("linear_top1", "linear top-1", "probe_objects_top1"),
             ("dense_mIoU", "dense mIoU", "probe_mIoU")],
    seed_key="runtime.seed", seed_of=json_seed, toy_config="configs/probe/toy.py", budget_of=probe_budget,
)]
