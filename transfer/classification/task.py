"""Linear probing and fine-tuning as the chain sees them (chain.task): tools/linprobe.py and tools/finetune.py
read the pretraining checkpoint itself."""
from chain.task import Task, json_seed

TASKS = [
    Task(name="linprobe", title="linear probing", tool="tools.linprobe", init="checkpoint",
         columns=[("top1", "LP top-1", "top1")], seed_key="runtime.seed", seed_of=json_seed,
         toy_config="configs/linprobe/toy.py", toy_overrides=["data.cache_features=True"]),
    Task(name="finetune", title="fine-tuning", tool="tools.finetune", init="checkpoint",
         columns=[("top1", "FT top-1", "top1")], seed_key="runtime.seed", seed_of=json_seed,
         toy_config="configs/finetune/toy.py"),
]
