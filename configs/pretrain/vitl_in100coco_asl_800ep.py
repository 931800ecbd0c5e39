# ViT-L/16 ASL on ImageNet-100 + COCO images, 800 epochs (batch 4096, optim.global_batch of base.py: 32 per GPU,
# accum_iter derived from the launch: 2 on 64 GPUs, 16 on 8).
# Sources: ViT-L, 800 epochs (Table 4), batch 4096 [paper]. The paper gives no ViT-L pretraining values of its own:
# MAE's decoder [MAE]; the enhancement layer at the encoder's width, 1024-d, 4 heads, dropout 0.5 [ours: the
# paper states 768-d for ViT-B].
_base_ = "vitb_in100coco_asl_800ep.py"
cfg = dict(model=dict(arch="vit_large_patch16"), optim=dict(batch_size=32))
