"""Tests of ssdbook.shapes (chapter 1a): the walkthrough batch and the shapes set on disk."""
import torch

from ssdbook.data import SHAPES_CLASSES
from ssdbook.shapes import walkthrough_batch


def test_walkthrough_batch_contract():
    images, targets = walkthrough_batch()
    assert images.shape == (15, 3, 300, 300) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert len(targets) == 15 and all(t.dtype == torch.float32 and t.dim() == 2 and t.shape[1] == 5 for t in targets)
    assert any(len(t) == 0 for t in targets)
    boxes = torch.cat(targets)
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:4] <= 1) & (boxes[:, 2:4] > boxes[:, :2])).all()
    labels = boxes[:, 4]
    assert torch.equal(labels, labels.round()) and labels.min() >= 0 and labels.max() < len(SHAPES_CLASSES)
    scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt() * 300
    assert (scale < 30).sum() >= 2 and (scale > 150).sum() >= 2          # small and large objects


def test_walkthrough_batch_is_deterministic():
    a, ta = walkthrough_batch()
    b, tb = walkthrough_batch()
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(ta, tb))
    c, _ = walkthrough_batch(n=3, seed=1)
    assert c.shape == (3, 3, 300, 300) and not torch.equal(c, a[:3])
    assert torch.equal(walkthrough_batch(n=4)[0], a[:4])
