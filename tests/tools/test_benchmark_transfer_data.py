"""tools/benchmark_transfer_data.py on a tiny setting: the generated COCO and ADE20K layouts, and the training loaders
of both transfer recipes (detectron2 LSJ 1024, mmseg 512 crops) timed with one worker each."""
import importlib.util
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("benchmark_transfer_data",
                                              os.path.join(REPO, "tools", "benchmark_transfer_data.py"))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_both_recipe_loaders_deliver_images(tmp_path):
    out = tmp_path / "result.json"
    result = tool.main(["--images", "6", "--batch", "2", "--batches", "2", "--json", str(out)])
    assert result["detectron2_lsj1024_img_per_s_per_core"] > 0
    assert result["mmseg_ade20k512_img_per_s_per_core"] > 0
    assert (result["images"], result["batch"], result["batches"]) == (6, 2, 2)
    assert json.loads(out.read_text()) == result
