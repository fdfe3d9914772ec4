"""ssdbook.matching against the reference golden data (amdegroot/ssd.pytorch) and
torchvision."""

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torchvision.ops import box_iou

from ssdbook.matching import (
    center_size,
    check_targets,
    intersect,
    jaccard,
    match,
    match_batch,
    pad_targets,
    point_form,
)

N_CASES = 10


@pytest.fixture(scope="module")
def priors(golden):
    return golden["priors_voc300"]


def as_target(case):
    return torch.cat([case["truths"], case["labels"][:, None]], dim=1)


def match_one(case, priors, threshold=0.5, variances=(0.1, 0.2)):
    loc_t = torch.full((2, priors.shape[0], 4), float("nan"))
    conf_t = torch.full((2, priors.shape[0]), -7, dtype=torch.long)
    match(
        threshold, case["truths"], priors, variances, case["labels"], loc_t, conf_t, 1
    )
    assert (
        torch.isnan(loc_t[0]).all() and (conf_t[0] == -7).all()
    )  # only row idx is written
    return loc_t[1], conf_t[1]


def loop_match(targets, priors, threshold=0.5, variances=(0.1, 0.2)):
    B, P = len(targets), priors.shape[0]
    loc_t, conf_t = torch.empty(B, P, 4), torch.empty(B, P, dtype=torch.long)
    for i, t in enumerate(targets):
        match(threshold, t[:, :4], priors, variances, t[:, 4], loc_t, conf_t, i)
    return loc_t, conf_t


# ---------------------------------------------------------------- boxes and jaccard
def test_point_form_center_size_round_trip(priors, golden):
    assert torch.equal(point_form(priors), golden["priors_voc300_point_form"])
    torch.testing.assert_close(
        center_size(point_form(priors)), priors, atol=1e-6, rtol=0
    )
    x = torch.rand(2, 3, 5, 4)
    torch.testing.assert_close(point_form(center_size(x)), x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("i", range(3))
def test_jaccard_golden_exact(golden, i):
    case = golden["jaccard_cases"][i]
    assert torch.equal(jaccard(case["box_a"], case["box_b"]), case["iou"])


@pytest.mark.parametrize("i", range(3))
def test_jaccard_vs_torchvision(golden, i):
    case = golden["jaccard_cases"][i]
    torch.testing.assert_close(
        jaccard(case["box_a"], case["box_b"]),
        box_iou(case["box_a"], case["box_b"]),
        atol=1e-6,
        rtol=1e-5,
    )


def test_jaccard_handmade_values():
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    b = torch.tensor(
        [
            [0.0, 0.0, 0.5, 0.5],  # identical
            [0.5, 0.5, 1.0, 1.0],  # corner touching
            [0.5, 0.0, 1.0, 0.5],  # edge sharing
            [0.0, 0.0, 0.25, 0.25],  # contained
            [0.25, 0.0, 0.75, 0.5],
        ]
    )  # half overlap
    iou = jaccard(a, b)
    assert iou.shape == (1, 5)
    torch.testing.assert_close(iou[0], torch.tensor([1.0, 0.0, 0.0, 0.25, 1 / 3]))
    assert torch.equal(
        intersect(a, b)[0], torch.tensor([0.25, 0.0, 0.0, 0.0625, 0.125])
    )


def test_jaccard_batched_equals_per_image(priors):
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(4, 3, 2, generator=g) * 0.6
    truths = torch.cat([xy, xy + 0.05 + torch.rand(4, 3, 2, generator=g) * 0.35], -1)
    pp = point_form(priors)
    batched = jaccard(truths, pp)
    assert batched.shape == (4, 3, priors.shape[0])
    for b in range(4):
        assert torch.equal(batched[b], jaccard(truths[b], pp))


def test_max_returns_first_occurrence():
    """The tie rule the golden data relies on: torch.max(dim) and argmax pick the lowest
    index."""
    x = torch.tensor([[0.3, 0.7, 0.7, 0.1, 0.7], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert x.max(1).indices.tolist() == [1, 0]
    assert x.argmax(1).tolist() == [1, 0]
    big = torch.zeros(3, 8732)
    big[:, [100, 5000, 8000]] = 1.0
    assert (
        big.max(1).indices.tolist() == [100] * 3 and big.max(0).indices[100].item() == 0
    )


# ---------------------------------------------------------------- the golden match
# cases
@pytest.mark.parametrize("i", range(N_CASES))
def test_match_golden_exact(golden, priors, i):
    case = golden["match_cases"][i]
    loc_t, conf_t = match_one(case, priors, case["threshold"], case["variances"])
    assert torch.equal(conf_t, case["conf_t"])
    assert torch.equal(loc_t, case["loc_t"])
    assert int((conf_t > 0).sum()) == case["num_pos"]


@pytest.mark.parametrize("i", range(N_CASES))
def test_match_batch_golden_exact(golden, priors, i):
    case = golden["match_cases"][i]
    loc_t, conf_t, d = match_batch(
        [as_target(case)],
        priors,
        case["threshold"],
        case["variances"],
        return_details=True,
    )
    assert (
        loc_t.shape == (1, 8732, 4)
        and conf_t.shape == (1, 8732)
        and conf_t.dtype == torch.int64
    )
    assert torch.equal(conf_t[0], case["conf_t"])
    assert torch.equal(loc_t[0], case["loc_t"])
    assert torch.equal(d["best_prior_idx"][0], case["best_prior_idx"])
    assert torch.equal(d["overlaps"][0].max(1).values, case["best_prior_overlap"])


def test_match_batch_all_golden_cases_in_one_batch(golden, priors):
    """Ten images with 1..4 objects padded together: every row still bit-identical."""
    cases = golden["match_cases"]
    loc_t, conf_t = match_batch([as_target(c) for c in cases], priors)
    for b, c in enumerate(cases):
        assert torch.equal(conf_t[b], c["conf_t"]), c["name"]
        assert torch.equal(loc_t[b], c["loc_t"]), c["name"]


def test_dropped_gt_has_no_positives(golden, priors):
    case = golden["match_cases"][3]  # two gts share a best prior, the later one wins
    _, conf_t, d = match_batch([as_target(case)], priors, return_details=True)
    owners = d["best_truth_idx"][0][conf_t[0] > 0]
    assert (owners == 0).sum() == 0 and (owners == 1).sum() == 1


@pytest.mark.parametrize("i", range(5))
def test_loss_cases_targets(golden, priors, i):
    case = golden["loss_cases"][i]
    loc_t, conf_t = match_batch(case["targets"], priors)
    assert torch.equal(conf_t, case["conf_t"])
    pos = case["conf_t"] > 0
    assert torch.equal(loc_t[pos], case["loc_t"][pos])
    assert torch.equal(loc_t, case["loc_t"])
    assert int(pos.sum()) == case["N"]


def test_jaccard_leading_dims_on_both_sides(priors):
    # box_b with its own batch dimension broadcasts too: (4, 3, 4) against (4, 50, 4) ->
    # (4, 3, 50)
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(4, 3, 2, generator=g) * 0.6
    truths = torch.cat([xy, xy + 0.05 + torch.rand(4, 3, 2, generator=g) * 0.35], -1)
    boxes = point_form(priors)[torch.randint(0, priors.shape[0], (4, 50), generator=g)]
    batched = jaccard(truths, boxes)
    assert batched.shape == (4, 3, 50)
    for b in range(4):
        assert torch.equal(batched[b], jaccard(truths[b], boxes[b]))
        torch.testing.assert_close(batched[b], box_iou(truths[b], boxes[b]))


# ---------------------------------------------------------------- batched == loop
def random_targets(seed, batch, max_obj, tiny):
    g = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        n = int(torch.randint(0, max_obj + 1, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 0.9
        scale = 0.02 if tiny else 0.6
        wh = 0.005 + torch.rand(n, 2, generator=g) * scale
        box = torch.cat([xy, (xy + wh).clamp(max=1.0)], 1)
        label = torch.randint(0, 20, (n, 1), generator=g).float()
        targets.append(torch.cat([box, label], 1))
    return targets


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 6),
    max_obj=st.integers(0, 6),
    tiny=st.booleans(),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_batched_equals_loop(priors, seed, batch, max_obj, tiny, threshold):
    targets = random_targets(seed, batch, max_obj, tiny)
    loc_b, conf_b = match_batch(targets, priors, threshold)
    loc_l, conf_l = loop_match(targets, priors, threshold)
    assert torch.equal(conf_b, conf_l)
    assert torch.equal(loc_b, loc_l)


# ---------------------------------------------------------------- empty images and bad
# input
def test_empty_image_is_background(priors):
    one = torch.tensor([[0.1, 0.2, 0.5, 0.6, 4.0]])
    loc_t, conf_t = match_batch([torch.zeros(0, 5), one, torch.zeros(0, 5)], priors)
    assert (
        (conf_t[0] == 0).all() and (conf_t[2] == 0).all() and (loc_t[[0, 2]] == 0).all()
    )
    ref_loc, ref_conf = match_batch([one], priors)
    assert torch.equal(conf_t[1], ref_conf[0]) and torch.equal(loc_t[1], ref_loc[0])
    assert set(conf_t[1].unique().tolist()) == {0, 5}
    loc_l, conf_l = loop_match([torch.zeros(0, 5), one, torch.zeros(0, 5)], priors)
    assert torch.equal(conf_l, conf_t) and torch.equal(loc_l, loc_t)


def test_all_empty_batch(priors):
    loc_t, conf_t, d = match_batch([torch.zeros(0, 5)] * 3, priors, return_details=True)
    assert loc_t.shape == (3, 8732, 4) and conf_t.shape == (3, 8732)
    assert (loc_t == 0).all() and (conf_t == 0).all() and d["valid"].shape == (3, 0)


def test_pad_targets(priors):
    t = [
        torch.tensor([[0.1, 0.1, 0.3, 0.3, 2.0]]),
        torch.zeros(0, 5),
        torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0], [0.5, 0.5, 1.0, 1.0, 19.0]]),
    ]
    truths, labels, valid = pad_targets(t)
    assert (
        truths.shape == (3, 2, 4) and labels.shape == (3, 2) and valid.shape == (3, 2)
    )
    assert labels.dtype == torch.int64 and valid.dtype == torch.bool
    assert valid.tolist() == [[True, False], [False, False], [True, True]]
    assert labels[2].tolist() == [0, 19] and torch.equal(truths[2], t[2][:, :4])
    assert pad_targets([torch.zeros(0, 5)])[0].shape == (1, 0, 4)


@pytest.mark.parametrize(
    "box, words",
    [
        ([0.2, 0.2, 0.2, 0.5, 1.0], "degenerate"),  # zero width
        ([0.2, 0.6, 0.4, 0.5, 1.0], "degenerate"),  # negative height
        ([0.2, float("nan"), 0.4, 0.5, 1.0], "not finite"),
        ([0.2, 0.2, 0.4, 0.5, -1.0], "negative label"),
    ],
)
def test_bad_box_raises(priors, box, words):
    good = torch.tensor([[0.1, 0.1, 0.4, 0.5, 3.0]])
    targets = [good, torch.cat([good, torch.tensor([box])])]
    for call in (
        lambda: match_batch(targets, priors),
        lambda: check_targets(targets),
        lambda: loop_match(targets, priors),
    ):
        with pytest.raises(ValueError, match=rf"image 1, box 1 .*{words}"):
            call()


def test_bad_shape_raises(priors):
    with pytest.raises(
        ValueError, match="image 1: a target must be a \\(num_objects, 5\\)"
    ):
        match_batch(
            [torch.zeros(1, 5) + torch.tensor([0, 0, 1, 1, 0.0]), torch.zeros(2, 4)],
            priors,
        )
    with pytest.raises(ValueError, match="empty batch"):
        match_batch([], priors)


def test_details(golden, priors):
    cases = golden["match_cases"][:3]
    loc_t, conf_t, d = match_batch(
        [as_target(c) for c in cases], priors, return_details=True
    )
    assert d["overlaps"].shape == (3, 4, 8732) and d["best_truth_idx"].shape == (
        3,
        8732,
    )
    assert d["best_prior_idx"].shape == (3, 4)
    forced = d["best_truth_overlap"] == 2
    assert forced.sum(1).tolist() == [1, 4, 1]
    assert (conf_t[forced] > 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_match_batch_cuda_equals_cpu(golden, priors):
    cases = golden["match_cases"]
    targets = [as_target(c) for c in cases] + [torch.zeros(0, 5)]
    loc_c, conf_c = match_batch(targets, priors)
    loc_g, conf_g = match_batch([t.cuda() for t in targets], priors.cuda())
    assert loc_g.device.type == "cuda"
    tie_free = [i for i, c in enumerate(cases) if c["tie_free"]] + [len(cases)]
    assert torch.equal(conf_g.cpu()[tie_free], conf_c[tie_free])
    torch.testing.assert_close(loc_g.cpu(), loc_c, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- options used by the
# loss
@pytest.mark.parametrize("i", range(5))
def test_positives_only_equals_full_on_positives(golden, priors, i):
    targets = golden["loss_cases"][i]["targets"] + [
        torch.zeros(0, 5)
    ]  # plus an empty image
    loc_full, conf_full = match_batch(targets, priors)
    loc_pos, conf_pos = match_batch(targets, priors, positives_only=True)
    assert torch.equal(conf_pos, conf_full)
    pos = conf_full > 0
    assert torch.equal(loc_pos[pos], loc_full[pos])  # bit for bit where the loss looks
    assert (loc_pos[~pos] == 0).all()  # 0 on the background priors
    assert loc_pos.shape == loc_full.shape and loc_pos.is_contiguous()


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 5),
    max_obj=st.integers(0, 5),
    tiny=st.booleans(),
)
def test_positives_only_random(priors, seed, batch, max_obj, tiny):
    targets = random_targets(seed, batch, max_obj, tiny)
    loc_full, conf_full = match_batch(targets, priors)
    loc_pos, conf_pos, d = match_batch(
        targets, priors, positives_only=True, return_details=True
    )
    pos = conf_full > 0
    assert torch.equal(conf_pos, conf_full) and torch.equal(loc_pos[pos], loc_full[pos])
    assert (loc_pos[~pos] == 0).all() and d["best_truth_idx"].shape == conf_pos.shape


def test_full_loc_t_is_contiguous(golden, priors):
    loc_t, _ = match_batch(golden["loss_cases"][0]["targets"], priors)
    assert loc_t.is_contiguous() and loc_t.shape[-1] == 4


def test_num_classes_check(priors):
    good = torch.tensor([[0.1, 0.1, 0.4, 0.5, 19.0]])  # label 19 fits 21 classes
    bad = torch.tensor([[0.1, 0.1, 0.4, 0.5, 3.0], [0.2, 0.2, 0.6, 0.6, 20.0]])
    match_batch([good], priors, num_classes=21)
    check_targets([good], num_classes=21)
    match_batch([good, bad], priors)  # no num_classes: not checked
    for call in (
        lambda: match_batch([good, bad], priors, num_classes=21),
        lambda: check_targets([good, bad], num_classes=21),
    ):
        with pytest.raises(
            ValueError, match=r"image 1, box 1 .*label 20, too large for num_classes=21"
        ):
            call()


def test_one_validator_for_the_book():
    import ssdbook.data
    import ssdbook.matching

    assert (
        ssdbook.matching.check_targets is ssdbook.data.check_targets
    )  # re-exported, not a copy
    assert "check_targets" in ssdbook.matching.__all__


@pytest.mark.parametrize(
    "box, words",
    [
        ([30.0, 60.0, 150.0, 180.0, 2.0], "pixels"),  # issue 12: pixel coordinates
        ([0.1, 0.1, 0.5, 0.5, 2.7], "not a whole number"),  # not truncated to 2
        ([0.1, 0.1, 0.5, 0.5, -0.5], "not a whole number"),
        ([0.1, 0.1, 0.5, 0.5, float("nan")], "label NaN"),
        ([0.1, 0.1, 0.5, 0.5, float("inf")], "infinite label"),
    ],
)
def test_wrong_values_are_rejected_by_both_matchers(priors, box, words):
    good = torch.tensor([[0.1, 0.1, 0.4, 0.5, 3.0]])
    targets = [good, torch.cat([good, torch.tensor([box])])]
    for call in (
        lambda: match_batch(targets, priors),
        lambda: loop_match(targets, priors),
    ):
        with pytest.raises(ValueError, match=rf"image 1, box 1 .*{words}") as err:
            call()
        assert "\n" not in str(err.value)
