"""ssdbook.priors: the default boxes, against the reference's golden priors; explicit
layouts (the designed priors)."""

import math
from itertools import product

import pytest
import torch

import json

from ssdbook.priors import (
    CONFIGS,
    PriorBox,
    boxes_per_location,
    coco,
    designed_layout,
    layout_config,
    layout_of,
    num_priors,
    shapes,
    ssd512,
    voc,
)


def reference_loop(cfg):
    """The reference's PriorBox.forward, written as its triple loop in Python doubles
    (before clipping)."""
    mean = []
    size = cfg['min_dim']
    for k, f in enumerate(cfg['feature_maps']):
        for i, j in product(range(f), repeat=2):
            f_k = size / cfg['steps'][k]
            cx, cy = (j + 0.5) / f_k, (i + 0.5) / f_k
            s_k = cfg['min_sizes'][k] / size
            mean += [cx, cy, s_k, s_k]
            s_k_prime = math.sqrt(s_k * (cfg['max_sizes'][k] / size))
            mean += [cx, cy, s_k_prime, s_k_prime]
            for ar in cfg['aspect_ratios'][k]:
                mean += [cx, cy, s_k * math.sqrt(ar), s_k / math.sqrt(ar)]
                mean += [cx, cy, s_k / math.sqrt(ar), s_k * math.sqrt(ar)]
    return torch.tensor(mean, dtype=torch.float32).view(-1, 4)


def test_voc_priors_bit_identical_to_golden(golden):
    priors = PriorBox(voc).forward()
    assert priors.dtype == torch.float32 and priors.shape == (8732, 4)
    assert torch.equal(priors, golden['priors_voc300'])


def test_voc_config_is_the_reference_config(golden):
    g = golden['priors_voc300_config']
    for key in (
        'feature_maps',
        'min_dim',
        'steps',
        'min_sizes',
        'max_sizes',
        'aspect_ratios',
        'variance',
        'clip',
    ):
        ours, theirs = voc[key], g[key]
        if isinstance(theirs, (list, tuple)):
            assert [
                list(x) if isinstance(x, (list, tuple)) else x for x in theirs
            ] == ours, key
        else:
            assert theirs == ours, key


def test_point_form_of_golden(golden):
    p = PriorBox(voc).forward()
    pf = torch.cat([p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2], 1)
    assert torch.equal(pf, golden['priors_voc300_point_form'])


@pytest.mark.parametrize("cfg", [voc, coco, ssd512], ids=lambda c: c['name'])
def test_vectorised_equals_reference_loop(cfg):
    unclipped = PriorBox(cfg, clip=False).forward()
    ref = reference_loop(cfg)
    assert torch.equal(unclipped, ref)
    assert torch.equal(PriorBox(cfg).forward(), ref.clamp(0, 1))


def test_counts():
    assert boxes_per_location(voc) == [4, 6, 6, 6, 4, 4]
    assert (
        num_priors(voc)
        == len(PriorBox(voc))
        == PriorBox(voc).forward().shape[0]
        == 8732
    )
    assert num_priors(coco) == PriorBox(coco).forward().shape[0] == 8732
    assert (
        num_priors(ssd512)
        == len(PriorBox(ssd512))
        == PriorBox(ssd512).forward().shape[0]
        == 24564
    )


def test_order_of_first_location():
    p = PriorBox(voc, clip=False).forward()
    c = 0.5 / 37.5
    s, s2 = 30 / 300, math.sqrt(30 / 300 * 60 / 300)
    exp = torch.tensor(
        [
            [c, c, s, s],
            [c, c, s2, s2],
            [c, c, s * math.sqrt(2), s / math.sqrt(2)],
            [c, c, s / math.sqrt(2), s * math.sqrt(2)],
        ],
        dtype=torch.float64,
    ).float()
    assert torch.equal(p[:4], exp)
    # next location is the next column (x), same row
    assert p[4, 0] > p[0, 0] and p[4, 1] == p[0, 1]
    # level 1 starts after 38*38*4 boxes and has 6 boxes per cell
    assert torch.allclose(p[5776, 2:], torch.tensor([0.2, 0.2]))


def test_clip_modes():
    center = PriorBox(voc).forward()
    assert torch.equal(center, PriorBox(voc, clip=True).forward())
    assert torch.equal(center, PriorBox(voc, clip='center').forward())
    none = PriorBox(voc, clip='none').forward()
    assert (
        none[:, :2].max() > 1 and none[:, 2:].max() > 1
    )  # the 10x10 centres at 1.013 and the 1.05 squares
    assert center.min() >= 0 and center.max() <= 1
    corners = PriorBox(voc, clip='corners').forward()
    lo, hi = corners[:, :2] - corners[:, 2:] / 2, corners[:, :2] + corners[:, 2:] / 2
    assert lo.min() >= -1e-6 and hi.max() <= 1 + 1e-6
    # the reference's centre clip leaves corners outside the image
    lo_c = center[:, :2] - center[:, 2:] / 2
    assert lo_c.min() < -0.3
    # boxes entirely inside the image are the same in both modes
    inside = ((none[:, :2] - none[:, 2:] / 2) >= 0).all(1) & (
        (none[:, :2] + none[:, 2:] / 2) <= 1
    ).all(1)
    assert inside.sum() > 4000
    assert torch.allclose(corners[inside], none[inside].float(), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="clip"):
        PriorBox(voc, clip='sideways')
    bad = dict(voc, steps=[8, 16, 32])
    with pytest.raises(ValueError, match="steps"):
        PriorBox(bad)


@pytest.mark.parametrize("cfg", [voc, coco, ssd512])
def test_layout_of_reproduces_priorbox_exactly(cfg):
    lay = layout_config(layout_of(cfg), image_size=cfg["min_dim"])
    assert torch.equal(PriorBox(lay).forward(), PriorBox(cfg).forward())
    assert boxes_per_location(lay) == boxes_per_location(cfg) and num_priors(
        lay
    ) == num_priors(cfg)


def test_layout_rejects_bad_boxes_naming_the_map():
    lv = layout_of(voc)
    lv[2] = dict(lv[2], boxes=[[0, 10]])
    with pytest.raises(ValueError, match="map 2"):
        layout_config(lv)
    with pytest.raises(ValueError, match="map 0: expected a dict"):
        PriorBox(dict(voc, layout=[{"feature_map": 38}]))
    with pytest.raises(ValueError, match="feature_maps"):
        PriorBox(dict(shapes, feature_maps=[38, 19, 10, 5, 3, 2]))


def test_shapes_config_keeps_the_heads_and_8732_priors():
    assert CONFIGS["shapes"] is shapes and shapes["layout"] == designed_layout()
    assert (
        boxes_per_location(shapes) == boxes_per_location(voc)
        and num_priors(shapes) == 8732
    )
    pri = PriorBox(shapes).forward()
    assert pri.shape == (8732, 4) and not torch.equal(pri, PriorBox(voc).forward())
    assert not torch.equal(
        pri[5776 : 5776 + 2166], PriorBox(voc).forward()[5776 : 5776 + 2166]
    )  # the 19x19 map too
    assert torch.equal(
        pri[5776 + 2166 :], PriorBox(voc).forward()[5776 + 2166 :]
    )  # maps 2..5 are voc's
    assert float(pri[:5776, 2].min()) * 300 == pytest.approx(
        15
    )  # 15 px squares on the 38x38 map


def test_shifted_boxes_sit_a_quarter_cell_off_centre():
    pri = (
        PriorBox(shapes, clip=False).forward()[:4] * 300
    )  # cell (0, 0) of the 38x38 map
    q = 300 / 38 / 4
    assert pri[0, :2].tolist() == pytest.approx([4 - q, 4 - q]) and pri[
        1, :2
    ].tolist() == pytest.approx([4 + q, 4 + q])
    assert pri[2, :2].tolist() == pytest.approx([4, 4])


def test_layout_config_survives_json_and_a_checkpoint(tmp_path):
    again = json.loads(json.dumps(shapes))
    assert again == shapes and torch.equal(
        PriorBox(again).forward(), PriorBox(shapes).forward()
    )
    torch.save({"prior_cfg": dict(shapes)}, tmp_path / "c.pth")
    back = torch.load(tmp_path / "c.pth", weights_only=True)["prior_cfg"]
    assert back == shapes and torch.equal(
        PriorBox(back).forward(), PriorBox(shapes).forward()
    )
