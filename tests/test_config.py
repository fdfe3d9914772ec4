"""Chapter 9: the run's config (ssdbook.config): field metadata -> checks and argparse
options; device choice."""

import argparse
import contextlib
import io

import pytest
import torch

from ssdbook.config import (
    TrainConfig,
    add_config_arguments,
    amp_dtype,
    config_from_args,
    config_warnings,
    pick_device,
    shapes_recipe,
    small_recipe,
    voc_recipe,
)
from ssdbook.runfolder import resume_changes


def test_config_validates_naming_the_field():
    for kw, field in (
        (dict(optimizer="adam"), "optimizer"),
        (dict(iterations=0), "iterations"),
        (dict(lr=-1e-3), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(device="gpu"), "device"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(cache="yes"), "cache"),
        (dict(pretrained="download"), "pretrained"),
    ):
        with pytest.raises(ValueError, match=rf"TrainConfig\.{field}"):
            TrainConfig(**kw)
    cfg = TrainConfig()
    cfg.lr = 0  # validate() also checks a config changed after construction
    with pytest.raises(ValueError, match=r"TrainConfig\.lr: must be > 0"):
        cfg.validate()


def test_recipes_round_trip():
    assert TrainConfig.from_dict(voc_recipe().to_dict()) == voc_recipe()
    assert TrainConfig.from_dict(
        shapes_recipe(steps=(5, 9)).to_dict()
    ) == shapes_recipe(steps=(5, 9))
    v = voc_recipe()
    assert (v.iterations, v.batch_size, v.lr, v.steps, v.momentum, v.weight_decay) == (
        120_000,
        32,
        1e-3,
        (80_000, 100_000),
        0.9,
        5e-4,
    )


def _parse(argv):
    p = add_config_arguments(argparse.ArgumentParser(prog="ssdbook train"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return p.parse_args(argv), ""
        except SystemExit as e:
            assert e.code == 2
            return None, err.getvalue()


def test_every_field_is_an_option_with_its_help():
    p = add_config_arguments(argparse.ArgumentParser(prog="ssdbook train"))
    text = p.format_help()
    for f in TrainConfig.__dataclass_fields__.values():
        assert "--" + f.name.replace("_", "-") in text, f.name
    assert "may grow" in text  # the resume rule is in --help


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--device", "gpu"], "argument --device: 'gpu' is not a device"),
        (["--lr", "-1"], "argument --lr: must be > 0"),
        (["--lr", "fast"], "argument --lr: expected float"),
        (["--optimizer", "adam"], "argument --optimizer: invalid choice: 'adam'"),
        (["--batch-size", "0"], "argument --batch-size: must be >= 1"),
        (["--cache", "maybe"], "argument --cache: expected yes or no"),
        (["--steps", "8e4"], "argument --steps: expected comma-separated integers"),
        (
            ["--image-sets", "2007"],
            "argument --image-sets: image set '2007': expected YEAR:NAME",
        ),
    ],
)
def test_bad_options_are_one_line_argparse_errors(argv, says):
    args, err = _parse(argv)
    assert args is None
    last = err.strip().splitlines()[-1]
    assert says in last and "Traceback" not in err


def test_config_from_args_takes_the_recipe_and_the_given_options():
    args, _ = _parse(
        [
            "--data",
            "voc",
            "--iterations",
            "1000",
            "--steps",
            "600,800",
            "--cache",
            "yes",
            "--image-sets",
            "2007:trainval",
        ]
    )
    cfg = config_from_args(args)
    assert cfg == voc_recipe(
        iterations=1000,
        steps=(600, 800),
        cache=True,
        image_sets=(("2007", "trainval"),),
    )
    args, _ = _parse([])
    assert config_from_args(args) == shapes_recipe()


def test_resume_rules():
    saved = shapes_recipe(iterations=30).to_dict()
    assert resume_changes(saved, shapes_recipe(iterations=30)) == {}
    assert resume_changes(
        saved, shapes_recipe(iterations=45, device="cpu", num_workers=0)
    ) == {"iterations": [30, 45], "device": ["auto", "cpu"], "num_workers": [-1, 0]}
    with pytest.raises(
        ValueError,
        match=r"cannot resume .* lr=0\.01: the run was trained with lr=0\.003",
    ):
        resume_changes(saved, shapes_recipe(iterations=30, lr=0.01))
    with pytest.raises(ValueError, match="iterations=20.*may only grow"):
        resume_changes(saved, shapes_recipe(iterations=20))
    saved.pop("check_every")  # an older checkpoint without a newer field: fine
    assert resume_changes(saved, shapes_recipe(iterations=30)) == {}


def test_device_choice_picks_cuda_when_present(monkeypatch):
    """Chapter 9's `device="auto"`: CUDA when torch sees a GPU (faked here), else the
    CPU; bf16 autocast where the GPU supports it, else fp16 (which the loop pairs with a
    GradScaler); fp32 on the CPU unless asked."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        pick_device("cuda:1")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a device"):
        pick_device("gpu")
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype(cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype(cuda) is torch.float16
    assert amp_dtype(cuda, "fp16") is torch.float16 and amp_dtype(cuda, "off") is None
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None and amp_dtype(cpu, "bf16") is torch.bfloat16


def test_chapter9_notebook_uses_auto_device():
    """No cell of the training chapters pins the device: the book runs on the GPU when
    there is one."""
    import json
    from pathlib import Path

    nbs = Path(__file__).resolve().parents[1] / "nbs"
    for name in (
        "09_training.ipynb",
        "09a_input_pipeline.ipynb",
        "09d_training_loop.ipynb",
    ):
        p = nbs / name
        if not p.exists():
            continue
        src = "".join(
            "".join(c["source"])
            for c in json.load(open(p))["cells"]
            if c["cell_type"] == "code"
        )
        assert 'device="cpu"' not in src and "device='cpu'" not in src, name


def _chapter_cell(name, marker):
    import json
    from pathlib import Path

    nb = json.load(open(Path(__file__).resolve().parents[1] / "nbs" / name))
    return next(
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and marker in "".join(c["source"])
    )


@pytest.mark.parametrize("cuda", [True, False])
def test_chapter_9c_training_cell_picks_the_gpu_recipe_when_cuda_is_there(
    monkeypatch, cuda
):
    """Issue 13: the chapter's training cell, run as written with CUDA faked present (or
    absent), builds the GPU recipe (SSD300-VGG16, batch 32, autocast, channels_last) or
    the CPU one (mini, runs/demo). `train` is a stub."""
    src = _chapter_cell("09d_training_loop.ipynb", 'device = pick_device("auto")')
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    seen = {}

    def fake_train(cfg):
        seen["cfg"] = cfg
        return dict(
            iteration=cfg.iterations,
            history=[dict(elapsed_s=1.0, img_s=2.0)],
            peak_memory_mb=3.0,
        )

    ns = dict(
        shapes_recipe=shapes_recipe,
        train=fake_train,
        QUICK=False,
        Path=__import__("pathlib").Path,
        os=__import__("os"),
    )
    exec(compile(src, "09d training cell", "exec"), ns)
    cfg = seen["cfg"]
    assert ns["device"].type == ("cuda" if cuda else "cpu") and cfg.device == "auto"
    if cuda:
        assert (cfg.base, cfg.batch_size, cfg.amp, cfg.channels_last) == (
            "vgg16",
            32,
            "auto",
            "on",
        )
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        assert amp_dtype(torch.device("cuda"), cfg.amp) is torch.bfloat16
    else:
        assert (
            cfg.base == "mini"
            and cfg.out.endswith("runs/demo")
            and cfg
            == shapes_recipe(root=cfg.root, out=cfg.out, resume="auto", progress=False)
        )


def test_priors_and_focal_gamma_fields():
    from ssdbook.config import PRIOR_CONFIGS, yes_no
    from ssdbook.priors import CONFIGS

    assert set(PRIOR_CONFIGS) == {"voc", "coco", "shapes", "coco_torchvision"} and all(
        k in CONFIGS for k in PRIOR_CONFIGS
    )
    cfg = shapes_recipe(priors="shapes", focal_gamma=2.0)
    assert (cfg.priors, cfg.focal_gamma) == ("shapes", 2.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert (
        TrainConfig().priors == "voc" and TrainConfig().focal_gamma == 0.0
    )  # the paper's defaults
    assert voc_recipe().priors == "voc" and voc_recipe().focal_gamma == 0.0
    with pytest.raises(ValueError, match="TrainConfig.priors: 'ssd512' is not one of"):
        shapes_recipe(priors="ssd512")  # 512 px: not this pipeline
    for bad in (-1, float("nan"), "2"):
        with pytest.raises(ValueError, match="TrainConfig.focal_gamma"):
            shapes_recipe(focal_gamma=bad)
    args = add_config_arguments(argparse.ArgumentParser()).parse_args(
        ["--priors", "shapes", "--focal-gamma", "2"]
    )
    assert (
        config_from_args(args).priors == "shapes"
        and config_from_args(args).focal_gamma == 2.0
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit):
        add_config_arguments(argparse.ArgumentParser()).parse_args(
            ["--focal-gamma", "-1"]
        )
    assert "must be >= 0" in err.getvalue()
    saved = shapes_recipe().to_dict()
    for change in (dict(priors="voc"), dict(focal_gamma=0.0)):  # fixed on resume
        with pytest.raises(ValueError, match=f"cannot resume .* {next(iter(change))}="):
            resume_changes(saved, shapes_recipe(**change))
    assert yes_no(True) is True and yes_no("off") is False


def test_coco_recipe():
    from ssdbook.config import RECIPES, coco_recipe

    cfg = coco_recipe()
    assert (
        RECIPES["coco"] is coco_recipe
        and cfg.data == "coco"
        and cfg.image_sets == ()
        and cfg.priors == "voc"
    )
    assert cfg.base == voc_recipe().base and cfg.lr == voc_recipe().lr
    args = add_config_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", "coco", "--iterations", "5"]
    )
    assert (
        config_from_args(args).data == "coco" and config_from_args(args).iterations == 5
    )


def test_shapes_recipe_is_the_main_jobs_recipe():
    """Chapter 10c's best: designed priors, focal loss, one weight per object, 3200 x
    16; bf16 exactly where the CPU computes it natively."""
    import torch
    from ssdbook.config import shapes_recipe

    cfg = shapes_recipe()
    assert (
        cfg.priors,
        cfg.focal_gamma,
        cfg.object_weight,
        cfg.iterations,
        cfg.batch_size,
    ) == ("shapes", 2.0, 1.0, 3200, 16)
    assert TrainConfig().object_weight == 0.0  # the paper's loss unless a recipe asks
    native = any(
        getattr(torch.cpu, f, lambda: False)()
        for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    assert cfg.amp == ("bf16" if native else "off")
    assert shapes_recipe(amp="off").amp == "off"  # a caller can still ask for fp32


# ---------------------------------------------------------------- issue 21 items 11,
# 19.3
def test_small_recipe_warmup_fits_its_iterations():
    assert small_recipe().warmup == 100 and small_recipe(iterations=400).warmup == 40
    assert small_recipe(iterations=5).warmup == 1 and small_recipe(warmup=7).warmup == 7
    s = small_recipe()
    assert (s.base, s.pretrained, s.batch_size, s.optimizer, s.schedule) == (
        "mini",
        "",
        16,
        "adamw",
        "cosine",
    )
    assert small_recipe(data="coco").image_sets == () and small_recipe().data == "voc"
    assert config_warnings(small_recipe(iterations=400)) == []
    (w,) = config_warnings(
        voc_recipe(iterations=400)
    )  # the README's old own-data command
    assert "warmup=500 >= iterations=400" in w and "--warmup 40" in w


def test_recipe_option_and_bare_bool_flags():
    p = add_config_arguments(argparse.ArgumentParser())
    args = p.parse_args(["--data", "voc", "--overwrite", "--cache", "no"])
    assert args.overwrite is True and args.cache is False
    args.recipe = "small"  # ssdbook train --recipe small
    assert config_from_args(args) == small_recipe(
        data="voc", overwrite=True, cache=False
    )


def test_ssdbook_fp32_forces_fp32(monkeypatch):
    from ssdbook.config import cpu_amp

    monkeypatch.setenv("SSDBOOK_FP32", "1")
    assert (
        cpu_amp() == "off"
        and shapes_recipe().amp == "off"
        and small_recipe().amp == "off"
    )
    assert amp_dtype("cpu", "bf16") is None and amp_dtype("cpu", "auto") is None
    monkeypatch.delenv("SSDBOOK_FP32")
    import torch

    assert amp_dtype("cpu", "bf16") == torch.bfloat16
