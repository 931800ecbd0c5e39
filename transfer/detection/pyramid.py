"""The pyramid's extra level for encoders of stride 8 (the toy's patch-8 ViT): detectron2's LastLevelMaxPool always
pools p5, which a pyramid at scales 2, 1, 0.5 of stride-8 tokens (p2-p4) does not have."""
from detectron2.modeling.backbone.fpn import LastLevelMaxPool


class MaxPoolLevel(LastLevelMaxPool):
    """LastLevelMaxPool on the level `in_feature` (p4 gives p5)."""

    def __init__(self, in_feature: str = "p5"):
        super().__init__()
        self.in_feature = in_feature
