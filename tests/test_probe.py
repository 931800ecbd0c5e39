"""The frozen-feature probes (asl.probe): known answers for kNN voting, the IoU counts (against mmseg's own
IoUMetric), the linear and dense probes on features whose answer is known."""
import math

import numpy as np
import pytest
import torch

from asl import probe


def test_knn_votes_are_weighted_by_similarity():
    """One very close neighbour of class 1 outvotes two farther ones of class 0 (weights exp(sim / 0.07)); an
    unweighted vote of the 3 nearest would say class 0."""
    train = torch.tensor([[0.99, math.sqrt(1 - 0.99 ** 2), 0.0], [0.9, 0.0, math.sqrt(1 - 0.81)],
                          [0.9, 0.0, -math.sqrt(1 - 0.81)], [-1.0, 0.0, 0.0]])
    labels = torch.tensor([1, 0, 0, 0])
    test = torch.tensor([[2.0, 0.0, 0.0]])  # unnormalised: cosine similarities 0.99, 0.9, 0.9, -1
    assert probe.knn_top1(train, labels, test, torch.tensor([1]), 2, k=3) == 100.0
    # at a high temperature the weights even out and the two class-0 neighbours win
    assert probe.knn_top1(train, labels, test, torch.tensor([1]), 2, k=3, temperature=100.0) == 0.0


def test_iou_counts_by_hand_and_ignored_pixels():
    pred = torch.tensor([[0, 1], [1, 1]])
    label = torch.tensor([[0, 1], [0, 255]])  # the last pixel is ignored, whatever is predicted there
    inter, union, area_pred, area_label = probe.intersect_and_union(pred, label, 3)
    assert inter.tolist() == [1, 1, 0] and union.tolist() == [2, 2, 0]
    assert area_pred.tolist() == [1, 2, 0] and area_label.tolist() == [2, 1, 0]
    iou, miou = probe.iou_from_counts(inter, union)
    assert iou[:2].tolist() == [50.0, 50.0] and math.isnan(iou[2]) and miou == 50.0  # class 2: in neither


def test_iou_counts_equal_mmseg_iou_metric():
    from mmseg.evaluation.metrics import IoUMetric

    gen = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 5, (3, 17, 23), generator=gen)
    label = torch.randint(0, 5, (3, 17, 23), generator=gen)
    label[:, :4] = 255
    label[label == 3] = 1  # class 3 only predicted: IoU 0, counted in the mean
    ours = probe.intersect_and_union(pred, label, 5)
    theirs = [IoUMetric.intersect_and_union(p, g, 5, 255) for p, g in zip(pred, label)]
    for a, b in zip(ours, zip(*theirs)):
        assert a.tolist() == sum(b).long().tolist()
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": [str(i) for i in range(5)]}
    metric.results = theirs
    assert probe.iou_from_counts(ours[0], ours[1])[1] == pytest.approx(metric.compute_metrics(theirs)["mIoU"],
                                                                        abs=0.01)


def _blobs(n, dim, classes, shift, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * shift
    return centres[labels] + torch.randn(n, dim, generator=gen), labels


def test_linear_probe_separates_separable_features_and_not_shuffled_labels():
    x, y = _blobs(200, 16, 4, 3.0, 0)
    xv, yv = _blobs(100, 16, 4, 3.0, 1)
    assert probe.linear_top1(x, y, xv, yv, 4) == 100.0
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert probe.linear_top1(x, shuffled, xv, yv, 4) < 45.0
    assert probe.linear_top1(x, y, xv, yv, 4, seed=3) == probe.linear_top1(x, y, xv, yv, 4, seed=3)  # seeded


def test_dense_probe_reads_classes_off_tokens_at_the_label_maps_resolution():
    """Tokens carry a one-hot of their 4x4 pixel block's class (plus noise): the probe, whose logits are upsampled
    bilinearly to the 16x16 maps, does as well as the one-hot itself upsampled (wrong only where blocks of three
    classes meet); with tokens that carry nothing it does not."""
    gen = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 3, (40, 4, 4), generator=gen)
    maps = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    tokens = torch.nn.functional.one_hot(blocks, 8).permute(0, 3, 1, 2).float() * 4
    tokens = tokens + 0.1 * torch.randn(tokens.shape, generator=gen)
    per_class, miou = probe.dense_miou(tokens[:30], maps[:30], tokens[30:], maps[30:], 3, epochs=300, batch_size=30)
    ideal = torch.nn.functional.interpolate(tokens[30:, :3], size=(16, 16), mode="bilinear").argmax(1)
    counts = probe.intersect_and_union(ideal, maps[30:], 3)
    assert miou == pytest.approx(probe.iou_from_counts(counts[0], counts[1])[1], abs=1.0) and miou > 85
    noise = torch.randn(tokens.shape, generator=gen)
    assert probe.dense_miou(noise[:30], maps[:30], noise[30:], maps[30:], 3)[1] < 50.0


def test_encode_returns_cls_and_mean_tokens_and_the_token_grid():
    from asl.models import build_encoder

    encoder = build_encoder("vit_micro_patch8", 32)
    images = torch.randn(5, 3, 32, 32)
    out = probe.encode(encoder, images, batch_size=2, tokens=True)
    tokens = encoder.forward_features(images)
    assert torch.allclose(out["image"], torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], 1), atol=1e-6)
    assert out["grid"].shape == (5, 32, 4, 4)
    assert np.allclose(out["grid"][:, :, 1, 2].float(), tokens[:, 1 + 1 * 4 + 2].detach(), atol=1e-2)
