# The paper's Table 5, row "+ grayscale": the baseline (vitb_in1k_mae_200ep.py) plus random grayscale after the
# crop and flip [paper: the augmentation's name]. Its parameter [ours: the paper gives none]: BYOL's p 0.2; one
# augmentation per row, as we read the table. Built in asl/data/transforms.py.
_base_ = "vitb_in1k_mae_200ep.py"
cfg = dict(data=dict(transform="mae+grayscale"))
