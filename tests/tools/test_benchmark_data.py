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


def test_benchmark_reports_every_reader_the_gpu_need_and_end_to_end_rates(tmp_path, monkeypatch):
    out = tmp_path / "result.json"
    rates = iter([3.0, 4.0])  # the end-to-end rates, real loader then synthetic input: a known ratio of 0.75
    monkeypatch.setattr(tool, "train_rate", lambda *args: next(rates))
    result = tool.main(["--images", "24", "--workers", "0,1", "--batch", "4", "--batches", "2", "--train-batches", "1",
                        "--img-size", "32", "--arch", "vit_micro_patch8", "--gpu-archs", "vit_micro_patch8",
                        "--mfu", "0.5", "--peak-tflops", "100", "--cores-per-gpu", "16,10", "--json", str(out)])
    assert set(result["loader_img_per_s"]) == {"folder_pil", "folder_fast", "shards_fast"}
    for rates in result["loader_img_per_s"].values():
        assert set(rates) == {0, 1} and all(v > 0 for v in rates.values())
    assert result["img_per_s_per_core"] == {r: rates[1] for r, rates in result["loader_img_per_s"].items()}
    mae, asl = result["gpu_need"]
    assert (mae["method"], asl["method"]) == ("mae", "asl")
    assert asl["train_gflops_per_img"] > mae["train_gflops_per_img"]
    # 50 % of 100 TFLOP/s over the training FLOPs per image (rounded to 0.01 GFLOPs in the record)
    assert mae["gpu_img_per_s"] == pytest.approx(0.5 * 100e3 / mae["train_gflops_per_img"], rel=0.01)
    assert abs(mae["per_core"][10] - mae["gpu_img_per_s"] / 10) <= 1
    assert (result["train_img_per_s_real_loader"], result["train_img_per_s_synthetic"]) == (3.0, 4.0)
    assert result["real_over_synthetic"] == 0.75
    saved = json.loads(out.read_text())
    assert saved["loader_img_per_s"]["shards_fast"] == {"0": result["loader_img_per_s"]["shards_fast"][0],
                                                        "1": result["loader_img_per_s"]["shards_fast"][1]}
