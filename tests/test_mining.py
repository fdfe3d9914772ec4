"""Hard negative mining (chapter 6, ssdbook.mining) against the reference and its edge
cases."""

import pytest
import torch

from ssdbook.mining import hard_negative_mining, log_sum_exp, prior_conf_loss


def _random_case(B=4, P=500, C=21, npos=(10, 0, 3, 40), seed=0):
    g = torch.Generator().manual_seed(seed)
    conf = torch.randn(B, P, C, generator=g)
    conf_t = torch.zeros(B, P, dtype=torch.long)
    for b, n in enumerate(npos):
        idx = torch.randperm(P, generator=g)[:n]
        conf_t[b, idx] = torch.randint(1, C, (n,), generator=g)
    return conf, conf_t


def test_golden_neg_mask(golden):
    for case in golden["loss_cases"]:
        pos = case["conf_t"] > 0
        neg = hard_negative_mining(
            prior_conf_loss(case["conf_data"], case["conf_t"]), pos, 3
        )
        assert torch.equal(neg, case["neg_mask"]), case["name"]
        assert torch.equal(neg.sum(1), case["num_neg"]), case["name"]
        assert torch.equal(pos.sum(1), case["num_pos"]), case["name"]


def test_count_is_three_per_positive_and_disjoint():
    conf, conf_t = _random_case()
    pos = conf_t > 0
    ce = prior_conf_loss(conf, conf_t)
    neg = hard_negative_mining(ce, pos, 3)
    assert neg.dtype == torch.bool and neg.shape == pos.shape
    assert torch.equal(neg.sum(1), 3 * pos.sum(1))
    assert not (neg & pos).any()
    # the mined negatives are the hardest: each one's loss >= every unmined negative's
    # loss
    for b in range(pos.shape[0]):
        if neg[b].any():
            assert ce[b][neg[b]].min() >= ce[b][~neg[b] & ~pos[b]].max()


def test_count_clamped_to_number_of_negatives():
    # 200 positives of 500 priors: 3*200 = 600 > 300 negatives -> all 300 negatives,
    # none of the positives
    conf, conf_t = _random_case(B=1, P=500, npos=(200,))
    pos = conf_t > 0
    neg = hard_negative_mining(prior_conf_loss(conf, conf_t), pos, 3)
    assert torch.equal(neg, ~pos)


def test_empty_image_and_empty_batch():
    conf, conf_t = _random_case()
    pos = conf_t > 0
    ce = prior_conf_loss(conf, conf_t)
    neg = hard_negative_mining(ce, pos, 3)
    assert neg[1].sum() == 0  # image 1 has no positives
    assert not hard_negative_mining(ce, torch.zeros_like(pos), 3).any()
    assert hard_negative_mining(ce[:0], pos[:0], 3).shape == (0, pos.shape[1])


def test_float_ratio_and_zero_ratio():
    conf, conf_t = _random_case()
    pos = conf_t > 0
    ce = prior_conf_loss(conf, conf_t)
    assert torch.equal(
        hard_negative_mining(ce, pos, 1.5).sum(1), (pos.sum(1) * 1.5).long()
    )
    assert not hard_negative_mining(ce, pos, 0).any()


def test_huge_logit_still_ranks_correctly():
    conf, conf_t = _random_case()
    pos = conf_t > 0
    neg = hard_negative_mining(prior_conf_loss(conf, conf_t), pos, 3)
    j = int(torch.nonzero(~pos[0] & ~neg[0])[0])  # an easy, unmined negative
    conf[0, j, 7] = 150.0
    ce = prior_conf_loss(conf, conf_t)
    assert torch.isfinite(ce).all()
    neg2 = hard_negative_mining(ce, pos, 3)
    assert neg2[0, j]  # now the hardest one
    assert torch.equal(neg2[1:], neg[1:])  # the other images are untouched
    assert neg2[0].sum() == neg[0].sum()


def test_reference_global_max_lse_breaks_but_ours_does_not():
    x = torch.randn(2000, 21)
    x[0, 3] = 150.0
    x_max = x.max()  # the reference's single global max
    ref = torch.log(torch.exp(x - x_max).sum(1)) + x_max
    assert torch.isinf(ref).sum() == 1999
    assert torch.allclose(log_sum_exp(x), torch.logsumexp(x, -1), atol=1e-5)


def test_log_sum_exp_matches_torch():
    g = torch.Generator().manual_seed(3)
    for scale in (1.0, 30.0, 1000.0):
        x = torch.randn(64, 8, 21, generator=g) * scale
        torch.testing.assert_close(
            log_sum_exp(x), torch.logsumexp(x, -1), rtol=1e-6, atol=1e-5
        )
    edge = torch.tensor(
        [[-float("inf")] * 3, [1e4, 0.0, -1e4], [float("inf"), 0.0, 1.0]]
    )
    torch.testing.assert_close(log_sum_exp(edge), torch.logsumexp(edge, -1))
    assert torch.isnan(log_sum_exp(torch.tensor([[float("nan"), 0.0]]))).all()


def test_prior_conf_loss_is_lse_minus_target_logit():
    conf, conf_t = _random_case()
    ce = prior_conf_loss(conf, conf_t)
    by_hand = log_sum_exp(conf) - conf.gather(2, conf_t[..., None]).squeeze(2)
    torch.testing.assert_close(ce, by_hand, rtol=1e-5, atol=1e-5)


def test_nan_is_mined_not_hidden():
    conf, conf_t = _random_case()
    pos = conf_t > 0
    conf[0, int(torch.nonzero(~pos[0])[-1]), 0] = float("nan")
    ce = prior_conf_loss(conf, conf_t)
    neg = hard_negative_mining(ce, pos, 3)
    assert torch.isnan(ce[neg]).any()


def test_mining_builds_no_graph():
    conf, conf_t = _random_case()
    ce = prior_conf_loss(conf.requires_grad_(True), conf_t)
    neg = hard_negative_mining(ce, conf_t > 0, 3)
    assert not neg.requires_grad


@pytest.mark.parametrize("bad", ["shape", "dtype", "ratio", "negative"])
def test_bad_input_raises(bad):
    conf, conf_t = _random_case()
    ce, pos = prior_conf_loss(conf, conf_t), conf_t > 0
    with pytest.raises(ValueError):
        if bad == "shape":
            hard_negative_mining(ce[:, :10], pos, 3)
        elif bad == "dtype":
            hard_negative_mining(ce, pos.long(), 3)
        elif bad == "ratio":
            hard_negative_mining(ce, pos, float("nan"))
        else:
            hard_negative_mining(ce, pos, -1)


def test_init_background_bias_starts_every_prior_at_background():
    import math
    from ssdbook.mining import init_background_bias
    from ssdbook.model import build_ssd
    from ssdbook.priors import boxes_per_location, voc

    torch.manual_seed(0)
    net = init_background_bias(build_ssd("train", base="mini", num_classes=7))
    for head, a in zip(net.conf, boxes_per_location(voc)):
        b = head.bias.view(a, 7)
        assert (
            torch.allclose(b[:, 0], torch.tensor(math.log(0.99 * 6 / 0.01)))
            and (b[:, 1:] == 0).all()
        )
    with torch.no_grad():
        conf = net.raw(torch.zeros(1, 3, 300, 300))[1]
    assert conf.softmax(-1)[..., 0].mean() > 0.9
