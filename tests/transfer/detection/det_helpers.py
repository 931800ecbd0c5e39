"""Shared by the detection tests (imported by name: pytest puts this folder on sys.path)."""
import importlib.util
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CONFIGS = os.path.join(REPO, "configs")
# A few iterations, no loader worker processes: the fast tests' budget.
FAST = ["train.max_iter=2", "dataloader.train.num_workers=0", "dataloader.test.num_workers=0",
        "train.log_period=1", "train.checkpointer.period=1"]
# A tiny backbone (64-d, 2 blocks) for tests that need training but no pretrained weights.
TINY = ["model.backbone.net.embed_dim=64", "model.backbone.net.depth=2", "model.backbone.net.num_heads=2",
        "model.backbone.net.window_block_indexes=[0]", "optimizer.params.num_layers=2"]


def load_tool(name):
    """tools/<name>.py as a module, to call its main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
