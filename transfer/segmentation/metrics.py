"""mmseg's IoUMetric, with the per-class IoU it prints also returned, so that metrics.json holds it."""
import numpy as np
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

PER_CLASS_PREFIX = "IoU."


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """IoUMetric's summary (aAcc, mIoU, mAcc in percent) plus `IoU.<class name>` for every class the split holds
    or the model predicts; a class absent from both has no IoU (mmseg's NaN) and no key."""

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        intersect, union, pred_area, label_area = (sum(column) for column in zip(*results))
        per_class = self.total_area_to_metrics(intersect, union, pred_area, label_area, ["mIoU"])["IoU"]
        for name, iou in zip(self.dataset_meta["classes"], np.asarray(per_class, dtype=np.float64)):
            if not np.isnan(iou):
                metrics[PER_CLASS_PREFIX + name] = float(np.round(iou * 100, 2))
        return metrics
