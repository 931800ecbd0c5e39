"""detectron2's COCOEvaluator results into metrics.json's keys: known answers for the cases it reports as NaN."""
import math

from transfer.detection.engine import flatten_metrics

NAN = {k: math.nan for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}


def test_no_detections_scores_box_and_mask_ap_zero_even_when_detectron2_leaves_masks_out():
    """With no predictions detectron2 evaluates only the box task (it infers tasks from the predictions)."""
    metrics, _, notes = flatten_metrics({"bbox": dict(NAN)}, ("bbox", "segm"))
    assert metrics == {f"{p}_{k}": 0.0 for p in ("box", "mask") for k in NAN}
    assert len(notes) == 2 and "no mask detections" in notes[1]
    box_only, _, _ = flatten_metrics({"bbox": dict(NAN)}, ("bbox",))
    assert set(box_only) == {f"box_{k}" for k in NAN}


def test_a_size_range_without_ground_truth_is_left_out_and_named():
    values = {"AP": 31.5, "AP50": 52.0, "AP75": 30.0, "APs": 12.5, "APm": 40.0, "APl": math.nan, "AP-disc": 7.0}
    metrics, per_category, notes = flatten_metrics({"bbox": values, "segm": dict(values, AP=28.0)})
    assert metrics["box_AP"] == 31.5 and metrics["mask_AP"] == 28.0 and metrics["box_AP50"] == 52.0
    assert "box_APl" not in metrics and per_category == {"box": {"disc": 7.0}, "mask": {"disc": 7.0}}
    assert any("APl left out" in n for n in notes)
