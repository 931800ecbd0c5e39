"""The pretraining transforms of asl/data/transforms.py: the global augmentations of the paper's Table 5 do what
their names say (exact properties on tensors), `data.transform` is validated strictly, and the defaults have none."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from asl.cli import UserError
from asl.data.images import seeded
from asl.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    blur_kernel,
    global_augmentation,
    parse_transform,
    pretrain_transform,
)


def image(seed=0, size=32):
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))


def test_grayscale_makes_the_channels_equal_to_the_luma():
    x = image()
    out = global_augmentation("grayscale", 32, p=1.0)(x)
    assert out.shape == x.shape
    luma = 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]  # ITU-R 601, torchvision's weights
    for channel in out:
        torch.testing.assert_close(channel, luma, atol=1e-6, rtol=0)
    assert torch.equal(global_augmentation("grayscale", 32, p=0.0)(x), x)


def test_solarize_inverts_exactly_the_values_at_or_above_one_half():
    x = image(1)
    x[0, 0, :3] = torch.tensor([0.5, 0.4999, 1.0])
    out = global_augmentation("solarize", 32, p=1.0)(x)
    torch.testing.assert_close(out, torch.where(x >= 0.5, 1.0 - x, x), atol=0, rtol=0)
    assert out[0, 0, :3].tolist() == pytest.approx([0.5, 0.4999, 0.0])
    assert (out <= 0.5).all()


def test_gaussian_blur_keeps_a_flat_image_and_smooths_an_impulse():
    flat = torch.full((3, 32, 32), 0.3)
    blur = global_augmentation("gaussianblur", 32, p=1.0)
    torch.testing.assert_close(blur(flat), flat)
    impulse = torch.zeros(3, 32, 32)
    impulse[:, 16, 16] = 1.0
    with seeded(0):
        out = blur(impulse)
    assert out[:, 16, 16].max() < 1.0 and out[:, 15:18, 15:18].sum() == pytest.approx(3.0, abs=1e-4)
    assert (out[:, 15, 16] > 0).all()  # spread to the neighbours; a 3x3 kernel at 32 px keeps the mass
    assert blur_kernel(224) == 23 and blur_kernel(32) == 3  # 10 % of the side, odd (SimCLR)


def test_colour_jitter_changes_colours_but_keeps_a_gray_image_gray():
    jitter = global_augmentation("colorjitter", 32, p=1.0)
    x = image(2)
    with seeded(3):
        out = jitter(x)
    assert out.shape == x.shape and not torch.allclose(out, x) and out.min() >= 0 and out.max() <= 1
    gray = image(4)[:1].repeat(3, 1, 1)
    with seeded(5):
        out = jitter(gray)
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], out[2], atol=1e-5, rtol=0)
    assert torch.equal(global_augmentation("colorjitter", 32, p=0.0)(x), x)


def test_data_transform_names_are_validated_strictly():
    assert parse_transform("mae") == ("mae", [])
    assert parse_transform("cifar+solarize+grayscale") == ("cifar", ["solarize", "grayscale"])
    for kind, message in [("mae+sepia", "unknown global augmentation 'sepia'; known: colorjitter, grayscale, "
                                        "gaussianblur, solarize"),
                          ("mae+grayscal", "did you mean 'grayscale'"),
                          ("simclr", "unknown pretraining transform 'simclr'"),
                          ("mae+", "unknown global augmentation ''"),
                          ("mae+solarize+solarize", "names a global augmentation twice"),
                          (["mae"], "must be a string")]:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace("+", r"\+")) as err:
            pretrain_transform(kind, 32)
        assert "\n" not in str(err.value)


def _pil(seed=0, size=48):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_the_pipeline_order_and_the_default_has_no_global_augmentation():
    default = pretrain_transform("mae", 32).transforms
    assert [type(t).__name__ for t in default] == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor",
                                                   "Normalize"]
    table5 = pretrain_transform("mae+colorjitter+grayscale+gaussianblur+solarize", 32).transforms
    assert [type(t).__name__ for t in table5] == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor",
                                                  "RandomApply", "RandomGrayscale", "RandomApply", "RandomSolarize",
                                                  "Normalize"]
    assert type(pretrain_transform("cifar+grayscale", 32).transforms[0]) is T.RandomCrop


def test_grayscale_in_the_full_pipeline_applies_at_its_probability_and_is_reproducible():
    transform = pretrain_transform("mae+grayscale", 32)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    gray = 0
    for i in range(200):
        with seeded(i):
            out = transform(_pil(i)) * std + mean  # back to [0, 1]
        with seeded(i):
            assert torch.equal(transform(_pil(i)) * std + mean, out)  # the same seed, the same augmentation
        gray += bool(torch.allclose(out[0], out[1], atol=1e-5) and torch.allclose(out[1], out[2], atol=1e-5))
    assert 20 <= gray <= 60  # p = 0.2 of 200 (fixed seeds: 0.2 +- 3 standard deviations)


def test_crop_scale_one_keeps_the_whole_image_and_only_flips():
    """data.crop_scale=(1.0, 1.0), the toy recipe: every sample is the image or its mirror, exactly (MAE's
    0.2-1 crops and resizes)."""
    img = _pil(7, 64)
    pixels = T.ToTensor()(img)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    whole = pretrain_transform("mae", 64, crop_scale=(1.0, 1.0))
    flips = []
    for seed in range(12):
        with seeded(seed):
            out = whole(img) * std + mean
        mirrored = torch.allclose(out, pixels.flip(-1), atol=1e-6)
        assert mirrored or torch.allclose(out, pixels, atol=1e-6), seed
        flips.append(mirrored)
    assert 0 < sum(flips) < len(flips)
    with seeded(0):
        assert not torch.allclose(pretrain_transform("mae", 64)(img) * std + mean, pixels, atol=1e-3)


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 0.2), (0.2, 1.5), (0.5,), "whole", "11", {"a": 1, "b": 1},
                                   None])
def test_a_bad_crop_scale_is_refused_in_one_line(scale):
    with pytest.raises(UserError, match="data.crop_scale must be two area fractions") as err:
        pretrain_transform("mae", 32, crop_scale=scale)
    assert "\n" not in str(err.value)
