"""Every GPU code path of the training loop, run on the CPU (issue 13): autocast with
the device's own type (bf16), the fp16 GradScaler's skip-on-inf step, a torch.compile'd
mini step, channels_last, pinned-memory loaders."""

import time

import pytest
import torch

from ssdbook.config import shapes_recipe
from ssdbook.loss import MultiBoxLoss
from ssdbook.model import build_ssd
from ssdbook.train import make_loader, train_step

TARGETS = [
    torch.tensor([[0.1, 0.1, 0.5, 0.5, 0.0], [0.5, 0.4, 0.9, 0.95, 2.0]]),
    torch.zeros(0, 5),
]


def _setup(seed=0, num_classes=4):
    torch.manual_seed(seed)
    net = build_ssd("train", base="mini", num_classes=num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9)
    x = torch.randn(2, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    return net, MultiBoxLoss(num_classes), opt, x


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_bf16_autocast_step_on_cpu():
    """autocast(device_type='cpu', dtype=bfloat16): the convolutions run in bf16, the
    loss in fp32, and the step learns."""
    net, crit, opt, x = _setup()
    seen = []
    hook = net.loc[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = _params(net)
    losses, finite = train_step(
        net,
        crit,
        opt,
        torch.amp.GradScaler("cpu", enabled=False),
        x,
        TARGETS,
        dtype=torch.bfloat16,
    )
    hook.remove()
    assert seen == [torch.bfloat16] and losses.dtype == torch.float32 and bool(finite)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    # close to the fp32 step's loss (bf16 keeps 8 mantissa bits)
    net32, crit32, opt32, _ = _setup()
    l32, _ = train_step(
        net32, crit32, opt32, torch.amp.GradScaler("cpu", enabled=False), x, TARGETS
    )
    assert torch.allclose(losses, l32, rtol=0.05)


def test_grad_scaler_skips_a_step_with_inf_gradients():
    """The fp16 path: GradScaler scales the loss, and a step whose gradients overflowed
    is skipped (weights and momentum untouched) while the scale is halved; the next
    clean step updates. On the CPU with an injected inf."""
    net, crit, opt, x = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    assert scaler.is_enabled()
    w = net.loc[0].weight
    handle = w.register_hook(lambda g: torch.full_like(g, float("inf")))
    before = _params(net)
    losses, finite = train_step(net, crit, opt, scaler, x, TARGETS, dtype=torch.float16)
    handle.remove()
    assert bool(finite)  # the loss was fine, a gradient overflowed
    assert all(
        torch.equal(a, b) for a, b in zip(before, net.parameters())
    )  # step skipped
    assert (
        scaler.get_scale() == 2.0**9 and not opt.state
    )  # scale halved, no momentum yet
    train_step(net, crit, opt, scaler, x, TARGETS, dtype=torch.float16)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert scaler.get_scale() == 2.0**9


def test_channels_last_gives_the_same_step():
    net, crit, opt, x = _setup()
    ref = train_step(
        net, crit, opt, torch.amp.GradScaler("cpu", enabled=False), x, TARGETS
    )[0]
    net_cl, crit, opt, x = _setup()
    net_cl = net_cl.to(memory_format=torch.channels_last)
    assert net_cl.loc[0].weight.is_contiguous(memory_format=torch.channels_last)
    out = train_step(
        net_cl,
        crit,
        opt,
        torch.amp.GradScaler("cpu", enabled=False),
        x.contiguous(memory_format=torch.channels_last),
        TARGETS,
    )[0]
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_compiled_mini_step(capsys):
    """One torch.compile'd training step of the mini SSD equals the eager step. Backend
    'aot_eager' (Dynamo's graph capture + AOTAutograd, what `compile=True` runs minus
    the code generation): inductor's C++ code generation of this model took 558 s on
    this shared 2-core machine (measured), too long for a test; aot_eager took 47 s."""
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    net, crit, opt, x = _setup()
    ref = train_step(
        net, crit, opt, torch.amp.GradScaler("cpu", enabled=False), x, TARGETS
    )[0]
    net, crit, opt, x = _setup()
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="aot_eager")
    t0 = time.perf_counter()
    out = train_step(
        compiled, crit, opt, torch.amp.GradScaler("cpu", enabled=False), x, TARGETS
    )[0]
    with capsys.disabled():
        print(
            f"\n[compiled mini step (aot_eager), first call incl. compilation: "
            f"{time.perf_counter() - t0:.1f} s]"
        )
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_cuda_loader_pins_memory(tmp_path):
    """On CUDA the loader hands out pinned batches, so the loop's .to(device,
    non_blocking=True) overlaps the copy."""
    from ssdbook.pipeline import CachedDataset

    class Two(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.rand(3, 300, 300), TARGETS[0]

    cfg = shapes_recipe(batch_size=2, iterations=1, num_workers=0, augment="light")
    assert make_loader(
        CachedDataset(Two()), cfg, 0, device=torch.device("cuda")
    ).pin_memory
    assert not make_loader(
        CachedDataset(Two()), cfg, 0, device=torch.device("cpu")
    ).pin_memory


def test_train_with_bf16_and_channels_last_on_cpu(tmp_path):
    """The whole loop with amp='bf16' on the CPU: the GPU configuration of chapter 9d,
    end to end."""
    from ssdbook.shapes import make_shapes_voc
    from ssdbook.train import train

    make_shapes_voc(tmp_path, n_train=6, n_test=2)
    r = train(
        shapes_recipe(
            root=str(tmp_path),
            out=str(tmp_path / "run"),
            n_train=6,
            n_test=2,
            iterations=2,
            batch_size=2,
            warmup=1,
            log_every=1,
            checkpoint_every=2,
            progress=False,
            num_workers=0,
            amp="bf16",
            channels_last="on",
            device="cpu",
        )
    )
    assert r["iteration"] == 2 and all(
        torch.isfinite(torch.tensor(h["loss"])) for h in r["history"]
    )


def test_gpu_check_cpu_mode(capsys):
    """benchmarks/gpu_check.py runs end to end in its CPU mode (tiny sizes) and its
    golden checks pass on the CPU."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--cpu", "--no-record"]) == 0
    out = capsys.readouterr().out
    for row in (
        "train mini SSD300",
        "inference + Detect",
        "match_batch + loss",
        "golden checks on cpu",
        "663-724",
    ):
        assert row in out, row
