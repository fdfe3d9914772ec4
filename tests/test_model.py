"""ssdbook.model: SSD300/SSD512 on VGG16 (the reference layout), the mini base, the
VGG16 conversion."""

import pytest
import torch
import torchvision

from ssdbook.model import (
    SSD,
    MiniSSD,
    VGGSSD,
    build_ssd,
    load_vgg16_imagenet,
    VGG16_CONV_INDICES,
)
from ssdbook.priors import PriorBox, coco, ssd512, voc

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def vgg300():
    torch.manual_seed(0)
    return build_ssd('train', 300, 21)


@pytest.fixture(scope="module")
def mini():
    torch.manual_seed(0)
    return build_ssd('train', base='mini', num_classes=7)


def test_layout_equals_reference(vgg300, voc_layout):
    ref = voc_layout['ssd300_voc']
    sd = vgg300.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [
        (k, list(s)) for k, s in ref['keys']
    ]
    assert (
        sum(p.numel() for p in vgg300.parameters()) == ref['num_params'] == 26_285_486
    )
    assert 'priors' not in sd


def test_load_state_dict_with_reference_layout(vgg300, voc_layout):
    g = torch.Generator().manual_seed(1)
    sd = {k: torch.randn(s, generator=g) for k, s in voc_layout['ssd300_voc']['keys']}
    net = build_ssd('train')
    result = net.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(net.vgg[31].weight, sd['vgg.31.weight'])
    assert torch.equal(net.L2Norm.weight, sd['L2Norm.weight'])
    assert torch.equal(net.conf[5].bias, sd['conf.5.bias'])


def test_vgg_forward_b1_matches_reference_shapes(vgg300, voc_layout):
    with torch.no_grad():
        loc, conf, priors = vgg300(torch.randn(1, 3, 300, 300))
    _, ref_conf, ref_priors = voc_layout['ssd300_voc']['output_shapes']
    assert (
        loc.shape == (1, 8732, 4)
        and conf.shape == (1, 8732, ref_conf[2])
        and list(priors.shape) == ref_priors
    )
    assert torch.isfinite(loc).all() and torch.isfinite(conf).all()


def test_vgg_b15_shapes_on_meta_device():
    with torch.device('meta'):
        net = build_ssd('train', 300, 21)
        loc, conf, priors = net(torch.empty(15, 3, 300, 300))
    assert (
        loc.shape == (15, 8732, 4)
        and conf.shape == (15, 8732, 21)
        and priors.shape == (8732, 4)
    )


@pytest.mark.parametrize("B", [1, 15])
def test_mini_output_shapes(mini, B):
    with torch.no_grad():
        loc, conf, priors = mini(torch.randn(B, 3, 300, 300))
    assert (
        loc.shape == (B, 8732, 4)
        and conf.shape == (B, 8732, 7)
        and priors.shape == (8732, 4)
    )


def test_mini_trains_with_batch_of_one():
    torch.manual_seed(0)
    net = build_ssd('train', base='mini', num_classes=3).train()
    loc, conf, _ = net(torch.randn(1, 3, 300, 300))
    (loc.square().mean() + conf.logsumexp(-1).mean()).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_priors_buffer(mini, golden):
    assert torch.equal(mini.priors, golden['priors_voc300'])
    assert 'priors' not in mini.state_dict()
    assert 'priors' in dict(mini.named_buffers())
    assert mini.to(torch.float64).priors.dtype == torch.float64
    mini.float()


def test_ssd512():
    with torch.device('meta'):
        net = build_ssd('train', 512, 21)
        loc, conf, priors = net(torch.empty(2, 3, 512, 512))
    assert (
        loc.shape == (2, 24564, 4)
        and conf.shape == (2, 24564, 21)
        and priors.shape == (24564, 4)
    )
    assert len(PriorBox(ssd512).forward()) == 24564
    keys = list(net.state_dict())
    assert (
        'extras.9.weight' in keys and 'loc.6.weight' in keys and 'conf.6.weight' in keys
    )
    assert net.extras[9].weight.shape == (256, 128, 4, 4)


def test_head_output_order_matches_priors(mini):
    """Prediction i comes from cell (i, j) and box a of the map that owns prior i: (B,
    A*4, H, W) -> (B, H*W*A, 4)."""
    x = torch.randn(2, 3, 300, 300)
    with torch.no_grad():
        sources = mini.features(x)
        loc, conf, _ = mini(x)
        start = 0
        for k, (s, head, chead) in enumerate(zip(sources, mini.loc, mini.conf)):
            out, cout = head(s), chead(s)  # (B, A*4, H, W), (B, A*C, H, W)
            A, H = out.shape[1] // 4, out.shape[2]
            i, j, a = H - 1, 0, A - 1  # bottom-left cell, last box
            idx = start + (i * H + j) * A + a
            assert torch.equal(loc[:, idx], out[:, a * 4 : (a + 1) * 4, i, j])
            assert torch.equal(conf[:, idx], cout[:, a * 7 : (a + 1) * 7, i, j])
            start += H * H * A
        assert start == 8732


@pytest.fixture(scope="module")
def tv_vgg16():
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None)  # random weights: never downloads


def test_vgg16_conversion(tv_vgg16):
    tv = tv_vgg16
    net = load_vgg16_imagenet(build_ssd('train'), tv)
    for i in VGG16_CONV_INDICES:
        assert torch.equal(net.vgg[i].weight, tv.features[i].weight)
        assert torch.equal(net.vgg[i].bias, tv.features[i].bias)
    fc6, fc7 = tv.classifier[0], tv.classifier[3]
    w6 = fc6.weight.view(4096, 512, 7, 7)
    assert torch.equal(
        net.vgg[31].weight, w6[0::4][:, :, [0, 3, 6]][:, :, :, [0, 3, 6]]
    )
    assert torch.equal(net.vgg[31].bias, fc6.bias[0::4])
    assert net.vgg[31].dilation == (6, 6)
    assert torch.equal(net.vgg[33].weight[:, :, 0, 0], fc7.weight[0::4][:, 0::4])
    assert torch.equal(net.vgg[33].bias, fc7.bias[0::4])
    # the same from a state_dict; the heads and extras are untouched
    extras = net.extras[0].weight.clone()
    net2 = load_vgg16_imagenet(net, tv.state_dict())
    assert torch.equal(net2.vgg[31].weight, w6[0::4][:, :, 0::3, 0::3])
    assert torch.equal(net2.extras[0].weight, extras)


def test_vgg16_conversion_bad_input(mini):
    with pytest.raises(ValueError, match="vgg16"):
        load_vgg16_imagenet(mini, {})
    with pytest.raises(ValueError, match="missing"):
        load_vgg16_imagenet(
            build_ssd('train'), {'features.0.weight': torch.zeros(64, 3, 3, 3)}
        )


@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 300, 300),
        (2, 3, 299, 300),
        (3, 300, 300),
        (1, 4, 300, 300),
        (1, 3, 512, 512),
    ],
)
def test_bad_input_shape(mini, shape):
    with pytest.raises(ValueError, match=r"\(B, 3, 300, 300\)"):
        mini(torch.zeros(shape))


def test_bad_input_type(mini):
    with pytest.raises(ValueError, match=r"\(B, 3, 300, 300\)"):
        mini([[0.0]])
    with pytest.raises(ValueError, match="float"):
        mini(torch.zeros(1, 3, 300, 300, dtype=torch.uint8))


def test_bad_arguments():
    with pytest.raises(ValueError, match="phase"):
        build_ssd('predict')
    with pytest.raises(ValueError, match="base"):
        build_ssd('train', base='resnet')
    with pytest.raises(ValueError, match="300"):
        build_ssd('train', 512, base='mini')
    with pytest.raises(ValueError, match="300 and 512"):
        build_ssd('train', 400)
    with pytest.raises(ValueError, match="num_classes"):
        build_ssd('train', base='mini', num_classes=1)


def test_classes_do_not_change_priors():
    """Unlike the reference, the priors follow `cfg` (default voc), not num_classes;
    coco on request."""
    net = build_ssd('train', base='mini', num_classes=7)
    assert torch.equal(net.priors, PriorBox(voc).forward())
    net = build_ssd('train', base='mini', num_classes=81, cfg=coco)
    assert torch.equal(net.priors, PriorBox(coco).forward())


def test_types(mini, vgg300):
    assert isinstance(mini, SSD) and isinstance(mini, MiniSSD)
    assert isinstance(vgg300, SSD) and isinstance(vgg300, VGGSSD)


def test_test_phase_works_on_first_call_with_no_other_import():
    """Issue 21.5: `build_ssd('test')` from `ssdbook.model` alone finds chapter 10's
    Detect."""
    import subprocess, sys

    code = (
        "import torch, sys; from ssdbook.model import build_ssd; "
        "assert 'ssdbook.detect' not in sys.modules; "
        "net = build_ssd('test', base='mini', num_classes=4).eval(); "
        "out = net(torch.randn(1, 3, 300, 300)); "
        "print(tuple(out.shape), type(net.detector).__name__)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[0] == "(1, 4, 200, 5) Detect"


def test_test_phase_without_a_registered_detector_uses_detect(monkeypatch):
    import ssdbook.model as model
    from ssdbook.detect import Detect

    monkeypatch.setattr(model, "_default_detector", None)  # nothing registered
    net = build_ssd(
        'test', base='mini', num_classes=4
    ).eval()  # building needs no detector
    x = torch.randn(1, 3, 300, 300)
    with torch.no_grad():
        assert net(x).shape == (1, 4, 200, 5) and isinstance(net.detector, Detect)
        loc, conf, priors = net.raw(x)  # raw outputs need none
    assert (
        loc.shape == (1, 8732, 4)
        and conf.shape == (1, 8732, 4)
        and priors.shape == (8732, 4)
    )


def test_raw_is_the_train_phase_output_whatever_the_phase():
    torch.manual_seed(0)
    train_net = build_ssd('train', base='mini', num_classes=4).eval()
    test_net = build_ssd(
        'test', base='mini', num_classes=4, detector=lambda *a: None
    ).eval()
    test_net.load_state_dict(train_net.state_dict())
    x = torch.randn(2, 3, 300, 300)
    with torch.no_grad():
        for a, b in zip(train_net(x), test_net.raw(x)):
            assert torch.equal(a, b)


def test_detector_argument_receives_probabilities():
    seen = {}

    def spy(loc, conf, priors):
        seen.update(loc=loc, conf=conf, priors=priors)
        return "detections"

    net = build_ssd('test', base='mini', num_classes=4, detector=spy).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 300, 300)) == "detections"
    assert seen['loc'].shape == (2, 8732, 4) and seen['priors'] is net.priors
    torch.testing.assert_close(seen['conf'].sum(-1), torch.ones(2, 8732))
    with pytest.raises(ValueError, match="detector"):
        build_ssd('test', base='mini', num_classes=4, detector="Detect")


def test_set_default_detector_is_used_per_network(monkeypatch):
    import ssdbook.model as model

    made = []
    monkeypatch.setattr(model, "_default_detector", None)
    model.set_default_detector(
        lambda num_classes: made.append(num_classes) or (lambda l, c, p: c.shape)
    )
    net = build_ssd('test', base='mini', num_classes=5).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 300, 300)) == (1, 8732, 5)
        net(torch.randn(1, 3, 300, 300))
    assert made == [5]  # built once, for this network's classes
    with pytest.raises(ValueError, match="callable"):
        model.set_default_detector(42)


def test_test_phase_returns_detections():
    from ssdbook.detect import Detect

    torch.manual_seed(0)
    net = build_ssd('test', base='mini', num_classes=4, detector=Detect(4)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 300, 300))
    assert out.shape == (2, 4, 200, 5)
    assert (out[:, 0] == 0).all()
