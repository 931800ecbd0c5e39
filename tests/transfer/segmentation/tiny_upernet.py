# The toy UperNet shrunk for unit tests: a 32-d, 4-block ViT (patch 8, 64 px) and 16-channel heads, a few
# iterations. Tests point --data-root at the session's small toy split and write their own checkpoints.
_base_ = ["../../../configs/segmentation/upernet_toy_1xb8_toyscenes.py"]

model = dict(
    backbone=dict(embed_dims=32, num_layers=4, num_heads=2, drop_path_rate=0.0, out_indices=[0, 1, 2, 3]),
    neck=dict(embed_dim=32),
    decode_head=dict(in_channels=[32, 32, 32, 32], channels=16, pool_scales=(1, 2), dropout_ratio=0.0),
    auxiliary_head=dict(in_channels=32, channels=8, dropout_ratio=0.0))  # no dropout: resume is bit-exact
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
max_iters = 2
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=1.0, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=3))
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(vis_backends=vis_backends)
run_info = dict(model="vit_test_tiny")
