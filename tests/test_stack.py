"""The dependency stack imports and runs a tiny forward pass through each framework we build on."""
import torch


def test_timm_vit_forward():
    import timm

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=64)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_detectron2_vit_and_simple_feature_pyramid():
    from detectron2.modeling import SimpleFeaturePyramid, ViT
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool

    net = ViT(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, window_size=2,
              window_block_indexes=[0], use_rel_pos=True, out_feature="last_feat")
    fpn = SimpleFeaturePyramid(net, in_feature="last_feat", out_channels=32, scale_factors=(4.0, 2.0, 1.0, 0.5),
                               top_block=LastLevelMaxPool(), norm="LN", square_pad=64)
    feats = fpn(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "p2": (1, 32, 16, 16), "p3": (1, 32, 8, 8), "p4": (1, 32, 4, 4), "p5": (1, 32, 2, 2), "p6": (1, 32, 1, 1)}


def test_mmseg_mae_backbone_and_uperhead():
    from mmengine.config import ConfigDict
    from mmseg.models.backbones import MAE
    from mmseg.models.decode_heads import UPerHead

    backbone = MAE(img_size=(64, 64), patch_size=16, embed_dims=64, num_layers=4, num_heads=2,
                   out_indices=(0, 1, 2, 3))
    feats = backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 4, 4)] * 4
    head = UPerHead(in_channels=[64] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2), channels=16, num_classes=5,
                    norm_cfg=ConfigDict(type="BN", requires_grad=True), align_corners=False)
    assert tuple(head(feats).shape) == (2, 5, 4, 4)


def test_mmcv_compiled_op():
    from mmcv.ops import nms, roi_align

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feat = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    out = roi_align(feat, torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float32), (1, 1), 1.0, 0, "avg", True)
    assert out.item() == feat.mean().item()
