"""asl.convert: key maps to and from detectron2 / mmseg / timm with every key accounted for, and the proof that
a timm ViT-B/16 saved in the MAE release format loads into this project's encoder with identical features."""
import pytest
import torch

from asl.checkpoint import encoder_state_dict, load_encoder, load_into, save_atomic
from asl.cli import UserError
from asl.convert import convert
from asl.models import PretrainModel, ViTEncoder
from asl.models.pos_embed import resize_pos_embed

TINY = dict(img_size=64, patch_size=16, embed_dim=64, depth=3, num_heads=2)


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(0)
    model = PretrainModel(dict(TINY), dict(embed_dim=32, depth=1, num_heads=2), "asl")
    return model.state_dict(), model.encoder.state_dict()


def converted(source_sd, target, **kw):
    sd, info = encoder_state_dict(source_sd)
    return convert(sd, info, target, **kw)


def test_every_source_key_is_mapped_or_dropped_for_a_reason(pretrained):
    full, _ = pretrained
    for target in ("detectron2", "mmseg", "timm"):
        out, report = converted(full, target)
        sources = [src for src, _ in report.mapped] + list(report.dropped)
        assert sorted(sources) == sorted(full)
        assert len(out) == len(report.mapped) and all(report.dropped.values())


@pytest.mark.parametrize("target,lost", [("detectron2", {"cls_token", "norm.weight", "norm.bias"}),
                                         ("mmseg", {"norm.weight", "norm.bias"}), ("timm", set())])
def test_round_trip_back_to_canonical(pretrained, target, lost):
    full, canonical = pretrained
    out, _ = converted(full, target)
    back, info = encoder_state_dict(out)
    assert info["format"] == {"detectron2": "detectron2", "mmseg": "mmseg", "timm": "mae/timm"}[target]
    assert sorted(back) == sorted(set(canonical) - lost)
    assert all(torch.equal(back[k], canonical[k]) for k in back)


def test_mmseg_final_norm_is_kept_on_request(pretrained):
    full, canonical = pretrained
    out, report = converted(full, "mmseg", final_norm=True)
    assert torch.equal(out["ln1.weight"], canonical["norm.weight"])
    back, _ = encoder_state_dict(out)
    assert sorted(back) == sorted(canonical)
    with pytest.raises(UserError, match="--to mmseg only"):
        converted(full, "timm", final_norm=True)


def test_mmseg_layer_scale_is_folded_and_trained_relative_positions_refused(pretrained):
    full, canonical = pretrained
    out, _ = converted(full, "mmseg")
    gamma = torch.rand(64) + 0.5
    mmseg = {"backbone." + k: v for k, v in out.items()}
    mmseg.update({"backbone.layers.1.gamma_1": gamma, "backbone.layers.1.gamma_2": torch.ones(64),
                  "backbone.layers.1.attn.relative_position_bias_table": torch.zeros(19, 2),
                  "decode_head.conv_seg.weight": torch.zeros(5, 8, 1, 1)})
    back, info = encoder_state_dict(mmseg)
    assert torch.allclose(back["blocks.1.attn.proj.weight"], canonical["blocks.1.attn.proj.weight"] * gamma[:, None])
    assert torch.equal(back["blocks.1.mlp.fc2.weight"], canonical["blocks.1.mlp.fc2.weight"])
    assert "segmentation neck and heads" in info["dropped"].values()
    mmseg["backbone.layers.1.attn.relative_position_bias_table"] = torch.ones(19, 2)
    with pytest.raises(UserError, match="relative_position_bias_table is non-zero"):
        encoder_state_dict(mmseg)


def test_detectron2_files_convert_back_or_are_refused(pretrained):
    full, _ = pretrained
    out, _ = converted(full, "detectron2")
    trained = dict(out, **{"backbone.net.blocks.0.attn.rel_pos_h": torch.zeros(7, 32), "roi_heads.x": torch.ones(1)})
    back, info = encoder_state_dict(trained)
    assert info["format"] == "detectron2" and not info["cls_token"]
    for target in ("mmseg", "timm"):  # docs/checkpoints.md: refused with the reason, never a cls token invented
        with pytest.raises(UserError, match=f"{target} needs the cls token, which this detectron2 checkpoint lacks"):
            convert(back, info, target)
    trained["backbone.net.blocks.0.attn.rel_pos_h"] += 1
    with pytest.raises(UserError, match="rel_pos_h is non-zero"):
        encoder_state_dict(trained)
    with pytest.raises(UserError, match="residual.conv1.weight is not part of a plain"):
        encoder_state_dict(dict(out, **{"backbone.net.blocks.0.residual.conv1.weight": torch.ones(1)}))


def test_pos_embed_is_resized_on_request(pretrained):
    full, canonical = pretrained
    out, report = converted(full, "mmseg", img_size=96)
    assert torch.equal(out["pos_embed"], resize_pos_embed(canonical["pos_embed"], 6))
    assert "from 4x4 to 6x6" in report.notes[0]


def test_timm_vit_base_in_mae_release_format_gives_the_same_features(tmp_path):
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    save_atomic({"model": reference.state_dict()}, tmp_path / "mae_pretrain_vit_base.pth")
    sd, info = load_encoder(tmp_path / "mae_pretrain_vit_base.pth")
    assert (info["embed_dim"], info["depth"], info["num_heads"], info["patch_size"], info["grid_size"]) == (
        768, 12, 12, 16, 14)
    assert set(info["dropped"]) == {"head.weight", "head.bias"}
    ours = ViTEncoder(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12).eval()
    load_into(ours, sd)
    img = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours.forward_features(img), reference.forward_features(img), atol=1e-4)
