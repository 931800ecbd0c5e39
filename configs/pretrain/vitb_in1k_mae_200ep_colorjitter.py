# The paper's Table 5, row "+ colorjitter": the baseline (vitb_in1k_mae_200ep.py) plus colour jitter after the crop
# and flip [paper: the augmentation's name]. Its parameters [ours: the paper gives none]: BYOL's brightness 0.4,
# contrast 0.4, saturation 0.2, hue 0.1, applied with p 0.8; one augmentation per row, as we read the table.
# Built in asl/data/transforms.py.
_base_ = "vitb_in1k_mae_200ep.py"
cfg = dict(data=dict(transform="mae+colorjitter"))
