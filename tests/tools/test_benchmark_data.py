"""tools/benchmark_data.py on a tiny setting: real-photo JPEGs at COCO sizes, loader rates per worker count, and
the end-to-end ratio of the real loader against synthetic input."""
import importlib.util
import json
import os

import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("benchmark_data", os.path.join(REPO, "tools", "benchmark_data.py"))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_photos_are_jpegs_at_coco_sizes(tmp_path):
    tool.write_photos(str(tmp_path), 6)
    sizes = [Image.open(tmp_path / f"{i:06d}.jpg").size for i in range(6)]
    assert sizes == [*tool.COCO_SIZES, tool.COCO_SIZES[0]]
    assert all(Image.open(tmp_path / f"{i:06d}.jpg").format == "JPEG" for i in range(6))
    # real photographs, not flat colour: every image has texture
    assert all(Image.open(tmp_path / f"{i:06d}.jpg").convert("L").getextrema()[1] > 100 for i in range(6))


def test_benchmark_reports_loader_and_end_to_end_rates(tmp_path):
    out = tmp_path / "result.json"
    result = tool.main(["--images", "24", "--workers", "0,1", "--batch", "4", "--batches", "2", "--img-size", "32",
                        "--arch", "vit_micro_patch8", "--json", str(out)])
    assert set(result["loader_img_per_s"]) == {0, 1} and all(v > 0 for v in result["loader_img_per_s"].values())
    assert result["train_img_per_s_real_loader"] > 0 and result["train_img_per_s_synthetic"] > 0
    ratio = result["train_img_per_s_real_loader"] / result["train_img_per_s_synthetic"]
    assert result["real_over_synthetic"] == pytest.approx(ratio, abs=0.01)  # from the unrounded rates
    assert json.loads(out.read_text())["loader_img_per_s"] == {"0": result["loader_img_per_s"][0],
                                                               "1": result["loader_img_per_s"][1]}
