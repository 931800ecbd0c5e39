# The paper's Table 5, row "+ solarize": the baseline (vitb_in1k_mae_200ep.py) plus solarization after the crop and
# flip [paper: the augmentation's name]. Its parameters [ours: the paper gives none]: BYOL's threshold 128 of 255
# (0.5 on the [0, 1] tensor), p 0.2; one augmentation per row, as we read the table. Built in
# asl/data/transforms.py.
_base_ = "vitb_in1k_mae_200ep.py"
cfg = dict(data=dict(transform="mae+solarize"))
