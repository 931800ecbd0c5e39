# ViT-S/4 fine-tuning on CIFAR-100: the protocol of cifar10_vits.py (MAE's fine-tuning at 32 px [ours]; the
# paper's "following [7]" gives no values).
_base_ = "cifar10_vits.py"
cfg = dict(data=dict(dataset="cifar100"))
