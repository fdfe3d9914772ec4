"""Chapter 9a: the input pipeline (ssdbook.pipeline): a resumable stream, cached images,
loaders."""

import pytest
import torch

from ssdbook.config import TrainConfig, shapes_recipe
from ssdbook.pipeline import (
    CachedDataset,
    ResizeU8,
    SeededDataset,
    StreamSampler,
    build_test_set,
    build_train_set,
    make_loader,
    sample_seed,
)
from ssdbook.shapes import make_shapes_voc


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_voc(root, n_train=10, n_test=4, seed=0)
    return root


def test_stream_sampler_is_resumable_and_splits_ranks():
    full = list(StreamSampler(7, 3, seed=5, start=0, stop=10))
    resumed = list(StreamSampler(7, 3, seed=5, start=4, stop=10))
    assert resumed == full[4:]
    idx = [i for b in full for i, _ in b]  # every epoch is a permutation of the data
    assert sorted(idx[:7]) == list(range(7)) and sorted(idx[7:14]) == list(range(7))
    one = list(
        StreamSampler(7, 6, seed=5, start=0, stop=3)
    )  # two ranks with 3 each = one with 6
    r0 = list(StreamSampler(7, 3, seed=5, start=0, stop=3, rank=0, world_size=2))
    r1 = list(StreamSampler(7, 3, seed=5, start=0, stop=3, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == one
    assert len(resumed) == 6
    with pytest.raises(ValueError, match="empty"):
        StreamSampler(0, 2)


def test_sample_seeds_differ_and_are_stable():
    seeds = {sample_seed(0, p) for p in range(1000)}
    assert len(seeds) == 1000 and sample_seed(3, 17) == sample_seed(
        3, 17
    ) != sample_seed(4, 17)


def test_seeded_dataset_leaves_the_callers_generators_alone():
    import random
    import numpy as np

    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(1).item(), random.random(), np.random.rand()

    ds = SeededDataset(Noisy())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    before = (torch.rand(1).item(), random.random(), np.random.rand())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    a, b = ds[(1, 42)], ds[(2, 42)]
    after = (torch.rand(1).item(), random.random(), np.random.rand())
    assert a == b and before == after  # same seed, same draws; caller's state untouched


def test_cached_dataset_is_one_uint8_tensor(shapes):
    cfg = shapes_recipe(root=str(shapes), n_train=10, n_test=4)
    ds, classes = build_train_set(cfg)
    cached = CachedDataset(ds, 300)
    assert (
        cached.images.shape == (10, 3, 300, 300) and cached.images.dtype == torch.uint8
    )
    img, tgt = cached[3]
    ref = ResizeU8(300)(*ds[3])[0]
    assert torch.equal(img, ref) and tgt.shape[1] == 5 and len(classes) == 6
    test = build_test_set("shapes", str(shapes))
    assert len(test) == 4


def test_loader_batches_do_not_depend_on_workers(shapes):
    cfg = shapes_recipe(
        root=str(shapes),
        n_train=10,
        n_test=4,
        iterations=2,
        batch_size=2,
        augment="ssd",
        num_workers=0,
        progress=False,
    )
    ds, _ = build_train_set(cfg)
    b0 = list(make_loader(ds, cfg, start=0))
    b2 = list(
        make_loader(
            ds, TrainConfig.from_dict(dict(cfg.to_dict(), num_workers=2)), start=0
        )
    )
    b1 = list(make_loader(ds, cfg, start=1))
    for (x, t), (y, u) in zip(b0, b2):
        assert torch.equal(x, y) and all(torch.equal(p, q) for p, q in zip(t, u))
    assert torch.equal(b1[0][0], b0[1][0])
    light = shapes_recipe(**{**cfg.to_dict(), "augment": "light"})
    x, t = next(iter(make_loader(CachedDataset(ds), light, start=0)))
    assert x.dtype == torch.uint8 and x.shape == (
        2,
        3,
        300,
        300,
    )  # augmented on the device by the loop


def test_max_images_limits_the_set(shapes):
    ds, _ = build_train_set(
        shapes_recipe(root=str(shapes), n_train=10, n_test=4, max_images=3)
    )
    assert len(ds) == 3


def test_coco_config_needs_a_dataset_not_a_voc_folder(shapes):
    from ssdbook.config import coco_recipe

    with pytest.raises(ValueError, match="data='coco'.*COCODetection"):
        build_train_set(coco_recipe(root=str(shapes)))
    with pytest.raises(ValueError, match="data='coco'.*COCODetection"):
        build_test_set("coco", str(shapes))
