# ViT-B/16 ASL on ImageNet-1K train images (labels unused), 800 epochs: the paper pretrains "with the same epochs
# of MAE", whose schedules are 800 and 1600 epochs (Table 3); 800 [ours] (optim.epochs=1600 for the other).
# base.py's large-scale recipe [paper]. The 1.28 M-file list is cached; under torch.distributed rank 0 lists it once.
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/imagenet/train", file_list_cache="{datasets}/imagenet/train_files.json"))
