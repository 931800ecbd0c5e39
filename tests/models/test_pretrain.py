import pytest
import torch

from asl.losses import masked_mse, normalize_patches, patch_contrastive, patchify
from asl.models import build_pretrain_model, random_masking
from asl.models.pos_embed import sincos_2d

TOY = dict(arch="vit_toy_patch16", img_size=64, decoder=dict(embed_dim=64, depth=1, num_heads=4))


def test_random_masking_keeps_a_quarter_and_restores_order():
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 16, 1)
    kept, mask, ids_restore = random_masking(x, 0.75, torch.Generator().manual_seed(0))
    assert kept.shape == (2, 4, 1) and mask.sum(1).tolist() == [12, 12]
    for b in range(2):  # the kept tokens are exactly the unmasked positions
        assert sorted(kept[b, :, 0].tolist()) == x[b, mask[b] == 0, 0].tolist()
    shuffled = torch.cat([kept, torch.full((2, 12, 1), -1.0)], 1)
    restored = torch.gather(shuffled, 1, ids_restore.unsqueeze(-1))
    assert torch.equal(restored[mask == 0], x[mask == 0])


def test_sincos_matches_mae_formula():
    emb = sincos_2d(8, 3, cls_token=True)
    assert emb.shape == (10, 8) and emb[0].abs().sum() == 0
    # patch (row 1, col 2): first half encodes the column (w = 2), second half the row (h = 1)
    omega = 1.0 / 10000 ** (torch.arange(2, dtype=torch.float64) / 2.0)
    expected = torch.cat([torch.sin(2 * omega), torch.cos(2 * omega), torch.sin(1 * omega), torch.cos(1 * omega)])
    assert torch.allclose(emb[1 + 1 * 3 + 2].double(), expected, atol=1e-6)


def test_mae_is_the_special_case_of_asl():
    mae = build_pretrain_model(method="mae", loss="mse", **TOY)
    asl = build_pretrain_model(method="asl", **TOY)
    assert mae.enhance is None and asl.enhance is not None
    asl_keys = set(asl.state_dict())
    assert set(mae.state_dict()) == {k for k in asl_keys if not k.startswith("enhance.")}
    out = mae(torch.randn(2, 3, 64, 64))
    assert set(out["terms"]) == {"recon"} and out["pred"].shape == (2, 16, 16 * 16 * 3)


def test_batched_and_sequential_decoding_agree():
    torch.manual_seed(0)
    model = build_pretrain_model(method="asl", decode_mode="batched", **TOY).eval()  # eval: no dropout
    imgs = torch.randn(3, 3, 64, 64)
    a = model(imgs, generator=torch.Generator().manual_seed(1))
    model.decode_mode = "sequential"
    b = model(imgs, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a["pred_enhanced"], b["pred_enhanced"], atol=1e-5)
    assert a["loss"].item() == pytest.approx(b["loss"].item(), rel=1e-5)


def test_enhancement_dropout_is_active_in_training_only():
    model = build_pretrain_model(method="asl", **TOY)
    h = torch.randn(2, 5, model.encoder.embed_dim)
    model.train()
    assert not torch.allclose(model.enhance(h), model.enhance(h))
    model.eval()
    assert torch.equal(model.enhance(h), model.enhance(h))


def test_sem_term_sends_no_gradient_to_the_plain_branch():
    torch.manual_seed(0)
    model = build_pretrain_model(method="asl", sem_weight=1.0, **TOY)
    out = model(torch.randn(2, 3, 64, 64))
    sem = model.sem_loss(out["pred_enhanced"], out["pred"], out["mask"])
    g_plain, g_enh = torch.autograd.grad(sem, [out["pred"], out["pred_enhanced"]], allow_unused=True)
    assert g_plain is None and g_enh.abs().sum() > 0



@pytest.mark.parametrize("loss", ["contrastive", "mse"])
def test_the_asl_loss_is_the_mean_of_both_branches_plus_the_weighted_l_sem(loss):
    """docs/design.md: L = 0.5 (L_rec(plain) + L_rec(enhanced)) + sem_weight x L_SEM, L_SEM the same loss from the
    enhanced to the plain branch's (detached) predictions; with loss=mse ASL keeps its enhancement branch."""
    torch.manual_seed(0)
    model = build_pretrain_model(method="asl", loss=loss, sem_weight=0.3, temperature=2.0, **TOY).eval()
    assert model.enhance is not None
    with torch.no_grad():  # predictions far apart, so that L_SEM's direction shows in its value
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    imgs = torch.randn(2, 3, 64, 64)
    out = model(imgs, generator=torch.Generator().manual_seed(1))
    target = normalize_patches(patchify(imgs, 16))
    if loss == "mse":
        rec = lambda p, t: masked_mse(p, t, out["mask"])  # noqa: E731
    else:
        rec = lambda p, t: patch_contrastive(p, t, out["mask"], temperature=2.0, max_negatives=0)  # noqa: E731
    plain, enhanced = rec(out["pred"], target), rec(out["pred_enhanced"], target)
    sem = rec(out["pred_enhanced"], out["pred"])
    if loss == "contrastive":  # not symmetric: the candidates are the plain branch's predictions
        assert abs(rec(out["pred"], out["pred_enhanced"]).item() - sem.item()) > 1e-3 * sem.item()
    assert out["terms"]["recon"].item() == pytest.approx(plain.item(), rel=1e-5)
    assert out["terms"]["recon_enh"].item() == pytest.approx(enhanced.item(), rel=1e-5)
    assert out["terms"]["sem"].item() == pytest.approx(sem.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.5 * (plain + enhanced).item() + 0.3 * sem.item(), rel=1e-5)

def test_mae_init():
    model = build_pretrain_model(method="asl", **TOY)
    assert model.decoder.decoder_blocks[0].attn.qkv.bias.abs().sum() == 0
    assert 0.005 < model.encoder.cls_token.std() < 0.05
    assert not model.encoder.pos_embed.requires_grad
