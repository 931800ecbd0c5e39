"""The layering docs/architecture.md states: the core (asl) imports neither detectron2 nor mmseg / mmengine /
mmcv, the chain (orchestration) imports no framework either, not even torch (it only starts the tools), and
neither adapter imports the other. Checked in a fresh interpreter that imports every module of the package."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("detectron2", "mmseg", "mmengine", "mmcv")
RULES = {
    "asl": FRAMEWORKS,
    "chain": (*FRAMEWORKS, "torch", "timm", "numpy"),
    "transfer.detection": ("mmseg", "mmengine", "mmcv"),
    "transfer.segmentation": ("detectron2",),
}
PROBE = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."):
    importlib.import_module(module.name)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_imports_no_framework_it_must_not(package):
    done = subprocess.run([sys.executable, "-c", PROBE, package], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert not loaded & set(RULES[package]), f"{package} imports {sorted(loaded & set(RULES[package]))}"


def test_the_chain_reads_every_task_declaration_without_torch():
    code = ("import sys; from chain.task import load_tasks; load_tasks(); "
            "print(' '.join(m for m in ('torch', 'timm', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "", (done.stdout, done.stderr[-2000:])
