# The paper's section 8: ViT-B/16 ASL on OpenImages v6 train images (~1.74 M, labels unused), 800 epochs [paper],
# base.py's large-scale recipe [paper: the paper gives no OpenImages-specific values]. Transfer: ImageNet-100
# linear probing, COCO detection, ADE20K segmentation (configs/pipeline/vitb_openimages.py). Images under
# $ASL_DATASETS/openimages/train (any folder tree: --data-path DIR); the file list is cached beside it, written
# once by rank 0 of the first run and read by every rank after (delete it when the folder changes).
_base_ = "base.py"
cfg = dict(data=dict(path="{datasets}/openimages/train", file_list_cache="{datasets}/openimages/train_files.json"))
