"""tools/build_in100_coco.py on a toy layout: ImageNet-100's classes of an ImageNet-style train split and a COCO
folder become one linked folder that pretraining lists, with the counts and the iteration arithmetic printed; a
rerun changes nothing; mistakes are one-line errors."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from asl.data.classification import imagenet100_classes
from asl.data.images import ImageFolder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "build_in100_coco.py")
spec = importlib.util.spec_from_file_location("build_in100_coco", TOOL)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def _layout(root):
    """ImageNet train: the 100 classes (class i holds 1 + i % 3 images) and 2 classes outside the list; COCO: 7."""
    classes = imagenet100_classes()
    for i, c in enumerate(classes):
        os.makedirs(root / "imagenet" / "train" / c)
        for j in range(1 + i % 3):
            (root / "imagenet" / "train" / c / f"{c}_{j}.JPEG").write_bytes(b"")
    for other in ("n99999998", "n99999999"):
        os.makedirs(root / "imagenet" / "train" / other)
        (root / "imagenet" / "train" / other / "x.JPEG").write_bytes(b"")
    os.makedirs(root / "coco" / "train2017")
    for k in range(7):
        (root / "coco" / "train2017" / f"{k:012d}.jpg").write_bytes(b"")
    return sum(1 + i % 3 for i in range(len(classes))), 7


def test_builds_links_prints_the_arithmetic_and_reruns_unchanged(tmp_path, monkeypatch, capsys):
    n_in100, n_coco = _layout(tmp_path)
    assert n_in100 == 199
    monkeypatch.setenv("ASL_DATASETS", str(tmp_path))
    cache = tmp_path / "in100_coco_files.json"
    tool.main(["--batch", "16", "--file-list", str(cache)])
    out = capsys.readouterr().out
    assert "101 new link(s); 206 images = 199 ImageNet-100 + 7 COCO train2017" in out
    assert "at batch 16: 12 iterations per epoch, 9,600 in 800 epochs, 48,000 in 4000 epochs" in out  # 206 // 16
    assert "note: the paper's set has 126,689 + 118,287 = 244,976 images" in out
    folder = tmp_path / "in100_coco"
    assert sorted(os.listdir(folder / "imagenet100")) == sorted(imagenet100_classes())
    assert os.path.realpath(folder / "coco_train2017") == str(tmp_path / "coco" / "train2017")
    dataset = ImageFolder(str(folder), cache_file=str(cache))  # what pretraining reads
    assert len(dataset) == 206 and not any("n9999999" in f for f in dataset.files)
    assert json.loads(cache.read_text())["root"] == str(folder)
    tool.main(["--batch", "16"])
    assert "0 new link(s); 206 images" in capsys.readouterr().out


def test_the_papers_counts_give_its_236k_iterations():
    total = sum(tool.PAPER_COUNTS.values())
    assert total == 244_976 and total // tool.PAPER_BATCH * 4000 == 236_000  # Table 3: ~236k


@pytest.mark.parametrize("case, message", [
    ("no_imagenet", "ImageNet train folder .* does not exist; give --imagenet DIR"),
    ("missing_class", "1 of the 100 ImageNet-100 classes are missing under .*first: n"),
    ("no_coco", "COCO train2017 folder .* does not exist; give --coco DIR"),
    ("conflict", "coco_train2017 exists and is not a link; remove it or choose another --out"),
])
def test_mistakes_are_one_line_errors(tmp_path, case, message):
    _layout(tmp_path)
    if case == "no_imagenet":
        os.rename(tmp_path / "imagenet", tmp_path / "elsewhere")
    elif case == "missing_class":
        os.rename(tmp_path / "imagenet" / "train" / imagenet100_classes()[3], tmp_path / "moved")
    elif case == "no_coco":
        os.rename(tmp_path / "coco", tmp_path / "elsewhere")
    else:
        os.makedirs(tmp_path / "in100_coco" / "coco_train2017")
    out = subprocess.run([sys.executable, TOOL], capture_output=True, text=True,
                         env=dict(os.environ, ASL_DATASETS=str(tmp_path)))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert re.search(message, out.stderr), out.stderr


def test_help_shows_an_example():
    out = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "python tools/build_in100_coco.py --imagenet /data/imagenet/train" in out.stdout
