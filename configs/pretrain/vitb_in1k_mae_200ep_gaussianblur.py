# The paper's Table 5, row "+ gaussianblur": the baseline (vitb_in1k_mae_200ep.py) plus Gaussian blur after the
# crop and flip [paper: the augmentation's name]. Its parameters [ours: the paper gives none]: SimCLR's kernel of
# 10 % of the side (23 px at 224), sigma uniform in 0.1-2.0, p 0.5; one augmentation per row, as we read the table.
# Built in asl/data/transforms.py.
_base_ = "vitb_in1k_mae_200ep.py"
cfg = dict(data=dict(transform="mae+gaussianblur"))
