import math

import pytest
import torch

from asl.losses import masked_mse, normalize_patches, patch_contrastive, patchify, unpatchify


def test_patchify_round_trip_and_order():
    imgs = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    patches = patchify(imgs, 2)
    assert patches.shape == (2, 4, 12)
    # first patch, first pixel: channels (0, 16, 32) of pixel (0, 0); second pixel is (0, 1)
    assert patches[0, 0, :6].tolist() == [0, 16, 32, 1, 17, 33]
    assert torch.equal(unpatchify(patches, 2), imgs)


def test_normalize_patches_zero_mean_unit_var():
    t = normalize_patches(torch.randn(3, 5, 12) * 7 + 2)
    assert torch.allclose(t.mean(-1), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(3, 5), atol=1e-4)


def test_masked_mse_averages_masked_patches_only():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    assert masked_mse(pred, target, mask).item() == pytest.approx((1 + 9) / 2)


def test_contrastive_hand_computed():
    # two masked patches in 1-D: p = (0, 2), t = (0, 1); distances d_ij = (p_i - t_j)^2, λ = 2
    pred = torch.tensor([[[0.0], [2.0]]])
    target = torch.tensor([[[0.0], [1.0]]])
    mask = torch.ones(1, 2)
    lam = 2.0
    l0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1 / lam)))
    l1 = -math.log(math.exp(-1 / lam) / (math.exp(-4 / lam) + math.exp(-1 / lam)))
    assert patch_contrastive(pred, target, mask, lam).item() == pytest.approx(lam * (l0 + l1) / 2, rel=1e-6)


def test_numerator_term_is_the_per_patch_mse():
    # λ·L = λ·(-log numerator) + λ·log denominator, and λ·(-log numerator) is MAE's masked MSE
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    mask = torch.tensor([[1.0, 0, 1, 1, 0], [0, 1, 1, 0, 1]])
    lam = 0.8
    p, t = pred[mask.bool()], target[mask.bool()]
    log_denominator = torch.logsumexp(-torch.cdist(p, t) ** 2 / 3 / lam, dim=1).mean()
    per_patch_mse = ((pred - target) ** 2).mean(-1)  # MAE's masked MSE, written out (not the module's)
    expected = per_patch_mse[mask.bool()].mean() + lam * log_denominator
    assert patch_contrastive(pred, target, mask, lam).item() == pytest.approx(expected.item(), rel=1e-5)


def test_well_separated_patches_give_near_zero_loss():
    target = torch.tensor([[[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0]]])
    pred = target + 0.1
    assert patch_contrastive(pred, target, torch.ones(1, 3), 0.5).item() == pytest.approx(0.0, abs=1e-6)


def test_a_patch_with_no_other_candidate_gives_zero_loss_and_a_finite_gradient():
    pred, target = torch.randn(1, 4, 6, requires_grad=True), torch.randn(1, 4, 6)
    mask = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    loss = patch_contrastive(pred, target, mask, 0.7)  # a single masked patch
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(torch.autograd.grad(loss, pred)[0]).all()
    two = torch.tensor([[0.0, 1.0, 1.0, 0.0]])  # one negative drawn: some row's own target, so it has none other
    loss = patch_contrastive(pred, target, two, 0.7, max_negatives=1, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and torch.isfinite(torch.autograd.grad(loss, pred)[0]).all()


def test_capped_negatives_with_all_candidates_equals_full():
    torch.manual_seed(1)
    pred, target, mask = torch.randn(2, 6, 4), torch.randn(2, 6, 4), torch.ones(2, 6)
    full = patch_contrastive(pred, target, mask, 1.0)
    assert patch_contrastive(pred, target, mask, 1.0, max_negatives=12).item() == pytest.approx(full.item())
    capped = patch_contrastive(pred, target, mask, 1.0, max_negatives=3, generator=torch.Generator().manual_seed(0))
    assert 0 < capped.item() < full.item()  # fewer negatives: a smaller denominator


def _reference_contrastive(pred, target, mask, lam, neg_ids):
    """Eq. 3 written out row by row: the positive's exact MSE, the drawn negatives other than the row's own."""
    p, t = pred[mask.bool()], target[mask.bool()]
    losses = []
    for i in range(len(p)):
        pos = ((p[i] - t[i]) ** 2).mean()
        others = torch.stack([((p[i] - t[j]) ** 2).mean() for j in neg_ids.tolist() if j != i])
        losses.append(pos + lam * torch.logsumexp(torch.cat([-pos[None], -others]) / lam, dim=0))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("max_negatives, chunk_size", [(0, 4096), (0, 5), (7, 4096), (7, 3)])
def test_values_and_gradients_equal_the_written_out_loss(max_negatives, chunk_size):
    """All negatives and a drawn subset (own targets drawn for some rows, not for others), in one chunk or several
    (so chunked equals unchunked)."""
    torch.manual_seed(2)
    pred = torch.randn(2, 9, 6, requires_grad=True)
    target = torch.randn(2, 9, 6)
    mask = (torch.rand(2, 9) < 0.7).float()
    n, lam = int(mask.sum()), 0.6
    neg_ids = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:max_negatives] if max_negatives \
        else torch.arange(n)
    loss = patch_contrastive(pred, target, mask, lam, chunk_size, max_negatives, torch.Generator().manual_seed(0))
    expected = _reference_contrastive(pred, target, mask, lam, neg_ids)
    (grad,) = torch.autograd.grad(loss, pred)
    (expected_grad,) = torch.autograd.grad(expected, pred)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(grad, expected_grad, atol=1e-6)


def test_the_logits_are_float32_under_bfloat16_autocast():
    torch.manual_seed(3)
    pred, target, mask = torch.randn(2, 16, 48), torch.randn(2, 16, 48), torch.ones(2, 16)
    exact = patch_contrastive(pred, target, mask, 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert patch_contrastive(pred, target, mask, 0.5).item() == pytest.approx(exact.item(), rel=1e-6)
    assert patch_contrastive(pred.double(), target.double(), mask, 0.5).dtype == torch.float64  # not narrowed
