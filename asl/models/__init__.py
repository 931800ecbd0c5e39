"""Model factories. `ARCHS` names the encoder sizes; `build_pretrain_model` makes an ASL or MAE model."""
from .decoder import MAEDecoder
from .enhance import FeatureEnhancement
from .pretrain import PretrainModel
from .vit import ViTEncoder, random_masking

ARCHS = {
    # tiny sizes for the toy scenes on a CPU (the size the toy calibration of docs/design.md used for transfer)
    "vit_micro_patch8": dict(patch_size=8, embed_dim=32, depth=2, num_heads=2),  # unit tests
    "vit_toy_patch8": dict(patch_size=8, embed_dim=128, depth=4, num_heads=4),  # the toy scenes (64 px)
    "vit_toy_patch16": dict(patch_size=16, embed_dim=192, depth=6, num_heads=3),
    "vit_tiny_patch16": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_small_patch4": dict(patch_size=4, embed_dim=384, depth=12, num_heads=6),  # CIFAR, 32 px -> 8x8 tokens
    "vit_base_patch16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}
MAE_DECODER = dict(embed_dim=512, depth=8, num_heads=16)


def encoder_kwargs(arch: str, img_size: int, **extra) -> dict:
    if arch not in ARCHS:
        raise KeyError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    return dict(ARCHS[arch], img_size=img_size, **extra)


def build_encoder(arch: str, img_size: int, **extra) -> ViTEncoder:
    return ViTEncoder(**encoder_kwargs(arch, img_size, **extra))


def build_pretrain_model(arch: str, img_size: int, method: str = "asl", decoder: dict = None,
                         **kwargs) -> PretrainModel:
    """ASL or MAE model for `arch` (a key of ARCHS); decoder defaults to MAE's 512-d, 8 blocks, 16 heads."""
    return PretrainModel(encoder_kwargs(arch, img_size), dict(MAE_DECODER, **(decoder or {})), method, **kwargs)


__all__ = ["ARCHS", "MAE_DECODER", "MAEDecoder", "FeatureEnhancement", "PretrainModel", "ViTEncoder",
           "build_encoder", "build_pretrain_model", "encoder_kwargs", "random_masking"]
