_base_ = "cifar10_vits.py"
cfg = dict(data=dict(dataset="cifar100"))
