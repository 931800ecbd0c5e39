"""The fast pretraining decode (DecodeCropFlip + to_model_input) against torchvision's MAE transform: the same
crop and flip for the same seed, the same pixels where it decodes in full, and within a stated tolerance where it
decodes a JPEG at a reduced DCT scale."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as F

from asl.cli import UserError
from asl.data.images import seeded
from asl.data.transforms import DecodeCropFlip, pretrain_transform, to_model_input
from tools.benchmark_data import write_photos

# A JPEG decoded at 1/2, 1/4 or 1/8 scale by libjpeg's scaled IDCT is not the full decode downscaled by PIL's
# bicubic filter: for a crop on the 8-pixel grid, the mean absolute difference per image stays within this many
# grey levels of 255
JPEG_MEAN_TOLERANCE = 2.0
# Any other crop also moves by up to half a pixel of the reduced image (its corners are rounded to that grid),
# which on a detailed photo changes more pixels: per image mean within this, the typical image within the above
RANDOM_CROP_MEAN_TOLERANCE = 6.0


def slow_params(img, seed, size):
    """The crop and flip torchvision's transform applies under `seed` (recorded from its functional calls)."""
    calls = {}
    real_crop, real_flip = F.resized_crop, F.hflip

    def crop(img, top, left, height, width, *args, **kwargs):
        calls["crop"] = (top, left, height, width)
        return real_crop(img, top, left, height, width, *args, **kwargs)

    def flip(img):
        calls["flip"] = True
        return real_flip(img)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "resized_crop", crop)
        mp.setattr(F, "hflip", flip)
        with seeded(seed):
            out = pretrain_transform("mae", size)(img)
    return (*calls["crop"], calls.get("flip", False)), out


def test_the_same_seed_draws_the_same_crop_and_flip_and_the_crops_follow_maes_distribution(tmp_path):
    Image.new("RGB", (640, 427)).save(tmp_path / "a.png")
    img = Image.open(tmp_path / "a.png").convert("RGB")
    fast = DecodeCropFlip(224)
    drawn = []
    for seed in range(300):
        with Image.open(tmp_path / "a.png") as lazy, seeded(seed):
            params = fast.params(lazy)
        assert params == slow_params(img, seed, 224)[0], seed
        drawn.append(params)
    top, left, height, width, flip = map(np.array, zip(*drawn))
    area, ratio = height * width / (640 * 427), width / height
    # scale 0.2-1; large crops of extreme ratio do not fit a 3:2 image and are drawn again, so the mean is < 0.6
    assert area.min() >= 0.19 and area.max() <= 1.0 and 0.35 < area.mean() < 0.6
    assert ratio.min() >= 0.74 and ratio.max() <= 1.34  # ratio 3/4-4/3 (clipped to the image where needed)
    assert 0.4 < flip.mean() < 0.6
    assert (top >= 0).all() and (top + height <= 427).all() and (left + width <= 640).all()


@pytest.mark.parametrize("size", [32, 61])
def test_a_png_gives_exactly_the_slow_paths_tensor(tmp_path, size):
    pixels = np.random.default_rng(0).integers(0, 256, (53, 97, 3), dtype=np.uint8)  # odd sizes
    Image.fromarray(pixels).save(tmp_path / "a.png")
    img = Image.open(tmp_path / "a.png").convert("RGB")
    for seed in range(20):
        with Image.open(tmp_path / "a.png") as lazy, seeded(seed):
            out = DecodeCropFlip(size)(lazy)
        assert out.dtype == torch.uint8 and out.shape == (3, size, size)
        assert torch.equal(to_model_input(out[None])[0], slow_params(img, seed, size)[1]), seed


def fast_vs_slow(path, top, left, height, width, flip):
    """(mean absolute difference, whether the fast way decoded at a reduced scale) of one crop."""
    with Image.open(path) as lazy:
        full_size = lazy.size
        out = DecodeCropFlip(224).apply(lazy, top, left, height, width, flip)
        reduced = lazy.size != full_size
    slow = F.resized_crop(Image.open(path).convert("RGB"), top, left, height, width, [224, 224],
                          F.InterpolationMode.BICUBIC)
    slow = F.hflip(slow) if flip else slow
    return np.abs(out.permute(1, 2, 0).numpy().astype(float) - np.asarray(slow, dtype=float)).mean(), reduced


def test_a_jpeg_decoded_at_reduced_scale_stays_within_the_tolerance(tmp_path):
    write_photos(str(tmp_path), 10)
    reduced = 0
    for n in range(10):
        path = tmp_path / f"{n:06d}.jpg"
        w, h = Image.open(path).size
        # fixed crops on the 8-pixel grid, from the whole image (decoded at 1/2 scale) to one decoded in full
        for top, left, height, width in ((0, 0, h // 8 * 8, w // 8 * 8), (16, 24, h // 2 + 8, w // 2 + 16),
                                         (h // 4 // 8 * 8, w // 4 // 8 * 8, 232, 240)):
            diff, was_reduced = fast_vs_slow(path, top, left, height, width, flip=bool(n % 2))
            assert diff <= JPEG_MEAN_TOLERANCE, (n, top, left, height, width, diff)
            reduced += was_reduced
    assert reduced == 6  # the whole image of the three COCO sizes with both sides >= 448 decodes at 1/2
    diffs = []
    for n in range(10):  # MAE's random crops
        path = tmp_path / f"{n:06d}.jpg"
        with Image.open(path) as lazy, seeded(n):
            diffs.append(fast_vs_slow(path, *DecodeCropFlip(224).params(lazy))[0])
    assert max(diffs) <= RANDOM_CROP_MEAN_TOLERANCE and np.median(diffs) <= JPEG_MEAN_TOLERANCE, diffs


def test_normalisation_on_the_device_is_totensor_then_normalize():
    batch = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    expected = torch.stack([F.normalize(F.to_tensor(F.to_pil_image(x)), (0.485, 0.456, 0.406),
                                        (0.229, 0.224, 0.225)) for x in batch])
    assert torch.equal(to_model_input(batch), expected)
    floats = torch.randn(2, 3, 4, 4)
    assert to_model_input(floats) is floats


@pytest.mark.parametrize("transform, fast", [("mae", True), ("mae+grayscale", False), ("mae+solarize", False)])
def test_only_maes_crop_and_flip_take_the_fast_decode(tmp_path, transform, fast):
    """docs/benchmarks.md: Table 5's global augmentations keep the PIL path (they work on decoded images); with
    the fast path a sample is the uint8 tensor DecodeCropFlip makes, with the PIL path a normalised float one."""
    from asl.data.images import Transformed
    from asl.engine.pretrain import build_dataset

    (tmp_path / "photos").mkdir()
    write_photos(str(tmp_path / "photos"), 2)
    data, _ = build_dataset(dict(dataset="folder", path=str(tmp_path / "photos"), transform=transform), 32)
    assert isinstance(data.dataset, Transformed) != fast
    assert data[0].dtype == (torch.uint8 if fast else torch.float32)


def test_crop_scale_reaches_the_fast_decode_of_the_pretraining_set(tmp_path):
    """build_dataset passes data.crop_scale to DecodeCropFlip: with (1.0, 1.0) a toy-sized PNG comes out whole,
    as it is or mirrored, in uint8."""
    from asl.engine.pretrain import build_dataset

    (tmp_path / "scenes").mkdir()
    pixels = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "scenes" / "a.png")
    image = torch.from_numpy(pixels).permute(2, 0, 1)
    cfg = dict(dataset="folder", path=str(tmp_path / "scenes"), transform="mae", crop_scale=(1.0, 1.0))

    def draws(data, epochs=8):  # SeededSamples: one draw per (epoch, index)
        for epoch in range(epochs):
            data.epoch = epoch
            yield data[0]

    def whole(sample):
        return torch.equal(sample, image) or torch.equal(sample, image.flip(-1))

    assert all(whole(s) for s in draws(build_dataset(cfg, 64)[0]))
    with pytest.raises(UserError, match="sets the mae recipe's crop; data.transform='cifar'"):
        build_dataset(dict(cfg, transform="cifar"), 64)  # the CIFAR crop would ignore it
    assert not any(whole(s) for s in draws(build_dataset(dict(cfg, crop_scale=(0.2, 1.0)), 64)[0]))
