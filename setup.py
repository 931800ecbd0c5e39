"""ASL: self-supervised representation learning from arbitrary scenarios.

The heavy stack (torch, detectron2, mmcv, mmseg) is installed by `make install` (tools/install.sh), because
detectron2 and mmcv need workarounds pip cannot express; see docs/install.md.
"""
from setuptools import find_namespace_packages, find_packages, setup

setup(
    name="asl-toolkit",
    version="0.1.0",
    description="ASL / MAE pretraining of plain ViTs on arbitrary scenes, with detectron2 and mmseg transfer",
    # configs/ goes along (as plain folders of .py files) so the tools' default configs exist in an install too
    packages=find_packages(include=["asl", "asl.*", "transfer", "transfer.*", "chain", "chain.*", "tools"])
    + find_namespace_packages(include=["configs", "configs.*"]),
    package_data={"asl.data": ["*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "timm",
        "numpy<2",
        "pillow",
        "safetensors",
        "matplotlib",
        "pycocotools",  # the object probes read COCO-format instance masks
    ],
    extras_require={
        "detection": ["detectron2", "pycocotools", "shapely", "fvcore==0.1.5.post20221221", "iopath==0.1.9"],
        "segmentation": ["mmcv==2.1.0", "mmengine==0.10.7", "mmsegmentation==1.2.2", "ftfy", "regex"],
    },
)
