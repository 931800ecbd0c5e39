# Your own data, from an unlabeled folder to the results table: ASL and MAE pretrain on `paths.unlabeled`, then
# they and a random initialisation transfer to your detection set (COCO format), your label maps and your class
# folders, with equal budgets. The toy recipes' sizes (64 px, the toy ViT, CPU budgets) are the starting point:
# scale them with overrides (e.g. pretrain.overrides, detection.overrides) or point the stages at other configs.
# Give every path on the command line; leave out a set you do not have with `<stage>=None`:
#   python tools/run_pipeline.py configs/pipeline/own_data.py paths.unlabeled=/data/u \
#       paths.det_train=/data/det/train.json paths.det_train_images=/data/det/train \
#       paths.det_val=/data/det/val.json paths.det_val_images=/data/det/val \
#       paths.seg_train_images=/data/seg/train paths.seg_train_labels=/data/seg/train_labels \
#       paths.seg_val_images=/data/seg/val paths.seg_val_labels=/data/seg/val_labels \
#       paths.seg_classes=background,lesion paths.classification=/data/cls
import os

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

cfg = dict(
    title="Your data: transfer of ASL, MAE and random initialisations",
    inits=["asl", "mae", "random"],
    jobs=2,
    toy=None,
    paths=dict(unlabeled=None, det_train=None, det_train_images=None, det_val=None, det_val_images=None,
               seg_train_images=None, seg_train_labels=None, seg_val_images=None, seg_val_labels=None,
               seg_classes=None, classification=None),
    pretrain=dict(configs=dict(asl=f"{CONFIGS}/pretrain/toy_asl.py", mae=f"{CONFIGS}/pretrain/toy_mae.py"),
                  # MAE's crops: one's own images show objects at many scales (the toy recipe keeps whole scenes,
                  # whose objects have one)
                  overrides=["runtime.tensorboard=False", "data.crop_scale=(0.2, 1.0)"],
                  args=["--data-path", "{unlabeled}"]),
    detection=dict(config=f"{CONFIGS}/detection/mask_rcnn_vitdet_toy_1000it.py", overrides=[],
                   args=["--train-annotations", "{det_train}", "--train-images", "{det_train_images}",
                         "--val-annotations", "{det_val}", "--val-images", "{det_val_images}"]),
    segmentation=dict(config=f"{CONFIGS}/segmentation/upernet_toy_1xb8_toyscenes.py", overrides=[],
                      args=["--train-images", "{seg_train_images}", "--train-labels", "{seg_train_labels}",
                            "--val-images", "{seg_val_images}", "--val-labels", "{seg_val_labels}",
                            "--classes", "{seg_classes}"]),
    linprobe=dict(config=f"{CONFIGS}/linprobe/toy.py",
                  overrides=["data.dataset='folder'", "data.path={classification}", "data.cache_features=True"]),
)
