import importlib

import pytest

from asl.data.toy import write_toy_scenes

# Every framework the toolkit's tools import. A broken install must fail the run, not skip the transfer suite:
# `make test` stops at the session start with one line naming the framework. Nothing the tests use is optional.
REQUIRED_FRAMEWORKS = {
    "torch": "everything", "timm": "the ViT blocks, RandAugment, mixup", "pycocotools": "COCO evaluation",
    "detectron2": "detection transfer (transfer/detection)",
    "shapely": "detectron2's LSJ crop of polygon masks (the COCO recipe)", "mmengine": "segmentation transfer's runner",
    "mmcv": "segmentation transfer's ops", "mmseg": "segmentation transfer (transfer/segmentation)",
}


def missing_framework():
    """The first required framework that does not import, as one line; None when all do."""
    for name, used_for in REQUIRED_FRAMEWORKS.items():
        try:
            importlib.import_module(name)
        except Exception as error:  # a broken install raises more than ImportError (e.g. a missing compiled op)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            return f"required framework {name} ({used_for}) does not import: {reason}; run `make install`"
    return None


def pytest_sessionstart(session):
    problem = missing_framework()
    if problem:
        pytest.exit(problem, returncode=3)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A small toy-scene dataset shared by the tests of a session (24 unlabeled, 24 train, 16 val, 128 px)."""
    root = tmp_path_factory.mktemp("toy_scenes")
    write_toy_scenes(str(root), num_unlabeled=24, num_train=24, num_val=16, size=128, seed=0)
    return root
