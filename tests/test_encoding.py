"""ssdbook.encoding: encode/decode against the reference golden data."""

import pytest
import torch

from ssdbook.encoding import decode, encode


@pytest.fixture(scope="module")
def priors(golden):
    return golden["priors_voc300"]


def matched_boxes(case, priors):
    """The truth each prior ends up with, found without ssdbook.matching (reference
    semantics, written out)."""
    truths = case["truths"]
    pp = torch.cat(
        [priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1
    )
    lt = torch.maximum(truths[:, None, :2], pp[None, :, :2])
    rb = torch.minimum(truths[:, None, 2:], pp[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / (area(truths)[:, None] + area(pp)[None] - inter)
    idx = iou.argmax(0)
    for j, p in enumerate(
        case["best_prior_idx"].tolist()
    ):  # forced best priors, later gt wins
        idx[p] = j
    return truths[idx]


def test_encode_golden_loc_t_of_every_match_case(golden, priors):
    for case in golden["match_cases"]:
        loc = encode(matched_boxes(case, priors), priors, case["variances"])
        assert loc.shape == (8732, 4)
        assert torch.equal(loc, case["loc_t"]), case["name"]


@pytest.mark.parametrize("i", range(2))
def test_decode_golden(golden, priors, i):
    case = golden["decode_nms_cases"][i]
    boxes = decode(case["loc"], priors, [0.1, 0.2])
    # Bit for bit although decode calls exp, whose routine differs per CPU capability:
    # .ci/run checks that the
    # AVX512, AVX2 and scalar paths all return the reference's bits for these 2 x 8732 x
    # 2 values.
    assert torch.equal(boxes, case["decoded_boxes"])


def test_decode_inverts_golden_loc_t(golden, priors):
    for case in golden["match_cases"]:
        torch.testing.assert_close(
            decode(case["loc_t"], priors),
            matched_boxes(case, priors),
            atol=2e-6,
            rtol=0,
        )


def test_round_trip_random():
    g = torch.Generator().manual_seed(0)
    priors = torch.cat(
        [torch.rand(500, 2, generator=g), 0.02 + torch.rand(500, 2, generator=g)], 1
    )
    xy = torch.rand(3, 500, 2, generator=g)
    boxes = torch.cat([xy, xy + 0.01 + torch.rand(3, 500, 2, generator=g)], -1)
    loc = encode(boxes, priors)
    assert loc.shape == (3, 500, 4)
    torch.testing.assert_close(decode(loc, priors), boxes, atol=1e-5, rtol=1e-5)
    loc2 = torch.randn(3, 500, 4, generator=g)
    torch.testing.assert_close(
        encode(decode(loc2, priors), priors), loc2, atol=1e-4, rtol=1e-4
    )
    # float64 round trip is tight
    torch.testing.assert_close(
        decode(encode(boxes.double(), priors.double()), priors.double()),
        boxes.double(),
        atol=1e-12,
        rtol=0,
    )


def test_broadcast_over_leading_dims(golden, priors):
    loc = torch.stack([c["loc"] for c in golden["decode_nms_cases"]])[None].expand(
        3, 2, 8732, 4
    )
    out = decode(loc, priors)
    assert out.shape == (3, 2, 8732, 4)
    for i, case in enumerate(golden["decode_nms_cases"]):
        assert torch.equal(out[1, i], case["decoded_boxes"])
    assert torch.equal(encode(out, priors)[2, 1], encode(out[0, 1], priors))


def test_variances_types(priors):
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.6]]).expand(8732, 4)
    a = encode(boxes, priors, (0.1, 0.2))
    assert torch.equal(a, encode(boxes, priors, [0.1, 0.2]))
    torch.testing.assert_close(a, encode(boxes, priors, torch.tensor([0.1, 0.2])))
    torch.testing.assert_close(
        encode(boxes, priors, (1.0, 1.0)) * torch.tensor([10.0, 10.0, 5.0, 5.0]), a
    )


def test_identity_and_degenerate(priors):
    pp = torch.cat(
        [priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1
    )
    torch.testing.assert_close(
        encode(pp, priors), torch.zeros(8732, 4), atol=2e-5, rtol=0
    )
    flat = torch.tensor([[0.2, 0.2, 0.2, 0.5]]).expand(
        8732, 4
    )  # zero width: log(0), rejected by matching
    assert torch.isinf(encode(flat, priors)[:, 2]).all()


def test_box_forms_live_in_chapter_4_and_matching_reexports_them(priors):
    import ssdbook.matching
    from ssdbook.encoding import center_size, point_form

    assert (
        ssdbook.matching.point_form is point_form
        and ssdbook.matching.center_size is center_size
    )
    pp = point_form(priors)
    assert torch.equal(
        pp,
        torch.cat(
            [priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1
        ),
    )
    torch.testing.assert_close(center_size(pp), priors, atol=1e-6, rtol=0)
    batch = torch.stack([priors[:5], priors[5:10]])  # (2, 5, 4): leading dims broadcast
    assert torch.equal(point_form(batch)[1], pp[5:10])
