"""Chapter 10c (ssdbook.ablation): every ablation row builds and trains, rows are
TrainConfig fields where they can be, the designed priors' coverage, the results file
and the speed benchmark; re-running a row into its folder."""

import dataclasses
import importlib.util
import inspect
import json
import math
from pathlib import Path

import pytest
import torch

import ssdbook.ablation as A
from ssdbook.config import TrainConfig
from ssdbook.loss import MultiBoxLoss
from ssdbook.priors import PriorBox, designed_layout, layout_of, shapes, voc
from ssdbook.train import build_model

ROOT = Path(__file__).resolve().parents[1]


def _bench_script(name: str):
    """Import `benchmarks/<name>.py` as module `name` (registered first: a dataclass
    looks its module up while it is built)."""
    import sys

    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """A private cache folder for the tiny shapes set of the QUICK budget (nothing
    written outside tmp)."""
    return tmp_path_factory.mktemp("shapes")


@pytest.mark.parametrize("name", list(A.VARIANTS))
def test_every_variant_trains_two_iterations(name, tiny_root, tmp_path):
    row = A.run_variant(
        name, 0, A.QUICK_BUDGET, root=tiny_root, threads=1, out=str(tmp_path / "run")
    )
    assert row["variant"] == name and row["iterations"] == 2
    assert 0 <= row["map"] <= 1 and math.isfinite(row["map"])
    assert set(row["ap"]) == {"circle", "square", "triangle", "star", "cross", "ring"}
    assert list(row["ap_by_size"]) == ["0-25 px", "25-50 px", "50-100 px", ">= 100 px"]
    assert row["priors"] == {"boxes {1}": 3880, "boxes {1,2,1/2}": 7760}.get(name, 8732)
    A.check_results(
        {"runs": [json.loads(json.dumps(row))]}
    )  # JSON-ready and of the schema


def test_unknown_variant_is_one_line_error():
    with pytest.raises(
        ValueError, match="unknown ablation variant 'nope'; choose one of: full"
    ):
        A.run_variant("nope")


def test_variant_config_is_the_training_config():
    cfg = A.variant_config("no augmentation", seed=3)
    assert (
        cfg.augment == "none"
        and cfg.seed == 3
        and cfg.iterations == A.ABLATION_BUDGET["iterations"]
    )
    assert (
        cfg.base == "mini" and cfg.optimizer == "adamw"
    )  # the rest is shapes_recipe()
    assert A.variant_config("full").out != A.variant_config("full", seed=1).out


def test_rows_are_training_configs_and_library_options():
    """Every row is TrainConfig fields, MultiBoxLoss keywords, batch_augment keywords, a
    width or a changed voc."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    loss_kw = set(inspect.signature(MultiBoxLoss).parameters)
    for name, v in A.VARIANTS.items():
        assert (
            set(v.config) <= fields
            and set(v.loss) <= loss_kw
            and set(v.priors) <= set(voc)
        ), name
    assert A.variant_config("focal loss").focal_gamma == 2.0
    assert (
        A.variant_config("designed + focal").priors == "shapes"
        and A.variant_config("coco priors").priors == "coco"
    )
    assert A.VARIANTS["no forced match"].loss == {"prior_for_matching": False}
    plain = [
        n
        for n, v in A.VARIANTS.items()
        if A.variant_net(v, A.variant_config(n), 7) is None
    ]
    assert set(A.VARIANTS) - set(plain) == {
        "boxes {1}",
        "boxes {1,2,1/2}",
        "clip corners",
        "no clip",
        "width 8",
        "width 12",
    }


def test_designed_priors_row_builds_the_shapes_config():
    cfg = A.variant_config("designed priors")
    net = build_model(cfg.base, 7, priors=cfg.priors)  # what chapter 9d's Run builds
    assert (
        torch.equal(net.priors, PriorBox(shapes).forward()) and len(net.priors) == 8732
    )
    loc, conf, priors = net.raw(torch.zeros(1, 3, 300, 300))
    assert loc.shape == (1, 8732, 4) and conf.shape == (1, 8732, 7)


def test_changed_voc_and_width_rows_build_their_own_net():
    v = A.VARIANTS["boxes {1}"]
    net = A.variant_net(v, A.variant_config("boxes {1}"), 7)
    assert (
        len(net.priors) == 3880
        and net.cfg["aspect_ratios"] == [[]] * 6
        and voc["aspect_ratios"][0] == [2]
    )
    wide = A.variant_net(
        A.VARIANTS["width 8"], A.variant_config("width 8", focal_gamma=2.0), 7
    )
    with torch.no_grad():
        assert (
            wide.raw(torch.zeros(1, 3, 300, 300))[1].softmax(-1)[..., 0].mean() > 0.9
        )  # focal: background start


def _shapes_like_boxes(n=20000, seed=0):
    """Boxes as the shapes generator draws them: sides 12..270 px, aspect 0.6..1.7,
    integer pixels, anywhere."""
    g = torch.Generator().manual_seed(seed)
    s = 12 * (270 / 12) ** torch.rand(n, generator=g)
    a = torch.exp((torch.rand(n, generator=g) * 2 - 1) * math.log(1 / 0.6))
    w, h = (s * a.sqrt()).clamp(12, 300).round(), (s / a.sqrt()).clamp(12, 300).round()
    x0, y0 = (
        (torch.rand(n, generator=g) * (301 - w)).floor(),
        (torch.rand(n, generator=g) * (301 - h)).floor(),
    )
    return torch.stack([x0, y0, x0 + w - 1, y0 + h - 1], 1) / 300, (w * h).sqrt()


def test_designed_priors_reach_every_object_of_the_shapes_set(tmp_path):
    """Every ground-truth box of a generated shapes set (>= 12 px by construction) has a
    designed prior at IoU >= 0.5."""
    from ssdbook.data import SHAPES_CLASSES
    from ssdbook.dataset import VOCDetection
    from ssdbook.shapes import shapes_set

    root = shapes_set(tmp_path, n_train=150, n_test=50, seed=0)
    ds = VOCDetection(
        root, [("shapes", "train"), ("shapes", "test")], classes=list(SHAPES_CLASSES)
    )
    boxes = torch.cat(
        [
            torch.as_tensor(ds.pull_anno(i)["boxes"]).float().reshape(-1, 4) / 300
            for i in range(len(ds))
        ]
    )
    sides = ((boxes[:, 2:] - boxes[:, :2]) * 300).prod(1).sqrt()
    assert len(boxes) > 300 and sides.min() >= 11.9
    designed = A.best_prior_iou(boxes, PriorBox(shapes).forward())
    today = A.best_prior_iou(boxes, PriorBox(voc).forward())
    assert designed.min() >= 0.5
    assert (today[sides < 20] < 0.5).all()  # today's priors reach no object under 20 px


def test_designed_priors_on_a_dense_sweep():
    """On 20,000 boxes placed anywhere: 99.8 % reach IoU >= 0.5; the misses are small
    boxes at unlucky positions."""
    boxes, sides = _shapes_like_boxes()
    iou = A.best_prior_iou(boxes, PriorBox(shapes).forward())
    assert (iou >= 0.5).float().mean() >= 0.997
    assert (iou[sides >= 14] >= 0.5).float().mean() >= 0.9995
    today = A.best_prior_iou(boxes, PriorBox(voc).forward())
    assert (today >= 0.5).float().mean() < 0.85


def test_level_reach_shows_the_smallest_map_is_too_coarse():
    reach = A.level_reach(layout_of(voc), [12, 30, 100, 250])
    assert reach.shape == (6, 4)
    assert reach[:, 0].max() < 0.5  # nothing reaches a 12 px square everywhere
    assert reach[0, 1] >= 0.5  # the 38x38 map reaches 30 px
    designed = A.level_reach(designed_layout(), [12, 15, 30])
    assert designed[0, 1] > reach[0, 0]


def test_results_schema(tmp_path):
    path = tmp_path / "r.json"
    row = dict(
        variant="full",
        group="baseline",
        seed=0,
        map=0.5,
        ap={"circle": 0.5},
        ap_by_size={"0-25 px": [3, 0.1]},
        train_seconds=1.0,
        eval_seconds=1.0,
        img_s=2.0,
        iterations=2,
        batch_size=2,
        n_train=16,
        n_test=8,
        priors=8732,
        params=1,
    )
    A.record_run(path, row)
    A.record_run(path, dict(row, map=0.6))  # same variant/seed/budget: replaced
    A.record_run(path, dict(row, seed=1))
    res = A.load_results(path)
    assert [(r["seed"], r["map"]) for r in res["runs"]] == [(0, 0.6), (1, 0.5)]
    with pytest.raises(ValueError, match="run 0 \\(full\\) lacks map"):
        A.check_results({"runs": [{k: v for k, v in row.items() if k != "map"}]})
    with pytest.raises(ValueError, match="outside"):
        A.check_results({"runs": [dict(row, map=1.5)]})


def test_committed_results_file_follows_the_schema():
    path = ROOT / "benchmarks" / "ablation_results.json"
    if not path.exists():
        pytest.skip("no ablation results recorded yet")
    res = A.load_results(path)
    assert any(r["variant"] == "full" for r in res["runs"])


def test_speed_table_counts_parameters_and_macs():
    """The timing is a benchmark (benchmarks/ablation_runs.py --speed); MACs are counted
    by the library's count_macs."""
    bench = _bench_script("ablation_runs")
    rows = bench.speed_table(widths=(8, 16), batch_size=2, rounds=1)
    assert [r["width"] for r in rows] == [8, 16]
    assert rows[0]["params"] < rows[1]["params"] and rows[0]["macs"] < rows[1]["macs"]
    assert all(r["train_img_s"] > 0 and r["infer_img_s"] > 0 for r in rows)


def test_summarize_pairs_each_row_with_the_full_run_of_the_same_seed():
    def run(v, seed, m):
        return dict(
            variant=v,
            group=A.VARIANTS[v].group,
            seed=seed,
            map=m,
            ap={},
            iterations=400,
            batch_size=8,
            n_train=2000,
            train_seconds=1.0,
            ap_by_size={"0-25 px": [1, m]},
        )

    res = {
        "budget": A.ABLATION_BUDGET,
        "runs": [
            run("full", 0, 0.40),
            run("full", 1, 0.50),
            run("focal loss", 1, 0.56),
            run("no augmentation", 0, 0.30),
            run("no augmentation", 1, 0.45),
        ],
    }
    rows = {r["variant"]: r for r in A.summarize(res)}
    assert list(rows) == ["full", "no augmentation", "focal loss"]  # VARIANTS order
    assert rows["full"]["spread"] == pytest.approx(0.10) and rows["full"]["delta"] == 0
    assert rows["focal loss"]["diffs"] == pytest.approx(
        [6.0]
    )  # vs full seed 1, not the mean
    assert rows["no augmentation"]["diffs"] == pytest.approx([-10.0, -5.0])
    assert (
        rows["no augmentation"]["delta"] == pytest.approx(-7.5)
        and rows["no augmentation"]["paper"] < 0
    )
    assert "no augmentation" in A.format_summary(list(rows.values()))


def test_rerunning_a_variant_into_its_folder_needs_overwrite_or_resume(
    tiny_root, tmp_path
):
    """A folder holding a run is refused (one line), replaced with overwrite=True,
    continued with resume."""
    out = str(tmp_path / "run")
    kw = dict(budget=A.QUICK_BUDGET, root=tiny_root, threads=1, out=out)
    first = A.run_variant("full", 0, **kw)
    with pytest.raises(ValueError, match="already holds a training run") as err:
        A.run_variant("full", 0, **kw)
    assert "\n" not in str(err.value) and "--overwrite" in str(err.value)
    again = A.run_variant("full", 0, overwrite=True, **kw)  # a fresh measurement
    assert again["iterations"] == first["iterations"] and again["map"] == pytest.approx(
        first["map"]
    )
    resumed = A.run_variant(
        "full", 0, resume="auto", **kw
    )  # finished: nothing left to train
    assert resumed["iterations"] == first["iterations"]


def test_the_grid_runner_measures_each_row_afresh(monkeypatch, tmp_path):
    """benchmarks/ablation_runs.py asks run_variant to overwrite a run left in the row's
    folder."""
    runner = _bench_script("ablation_runs")
    calls = []

    def fake(name, seed, budget, **kw):
        calls.append(kw)
        return dict(
            variant=name,
            group="baseline",
            seed=seed,
            map=0.5,
            ap={"circle": 0.5},
            ap_by_size={"0-25 px": [1, 0.5]},
            train_seconds=1.0,
            eval_seconds=1.0,
            img_s=1.0,
            iterations=budget["iterations"],
            batch_size=budget["batch_size"],
            n_train=budget["n_train"],
            n_test=8,
            priors=8732,
            params=1,
        )

    monkeypatch.setattr(A, "run_variant", fake)
    monkeypatch.setattr(
        runner.torch, "set_num_threads", lambda n: None
    )  # keep this process's
    runner.main(["--variants", "full", "--out", str(tmp_path / "r.json")])
    assert calls == [dict(threads=1, overwrite=True)]
    assert A.load_results(tmp_path / "r.json")["runs"][0]["variant"] == "full"


# ---------------------------------------------------------------- issue 19.2: the
# reader's budget (benchmarks/fp32_budget.py) and one weight per object
def _fp32_budget():
    return _bench_script("fp32_budget")


def test_the_grid_keeps_every_positive_at_weight_one():
    """The recorded grid was measured with every positive weighing 1: its rows stay so
    although `shapes_recipe()` now weighs each object once."""
    from ssdbook.config import shapes_recipe

    assert shapes_recipe().object_weight == 1.0
    assert all(A.variant_config(v).object_weight == 0.0 for v in A.VARIANTS)


@pytest.mark.parametrize("name", ["baseline", "patchify stem", "object weights 1"])
def test_fp32_budget_candidates_train_two_iterations(name, tiny_root, tmp_path):
    mod = _fp32_budget()
    tiny = dict(mod.BUDGET, iterations=2, warmup=1, n_train=24, n_test=8)
    row = mod.run_candidate(name, 0, 1, root=tiny_root, budget=tiny, out=tmp_path / "r")
    assert row["candidate"] == name and row["iterations"] == 2
    assert 0 <= row["map"] <= 1 and 0 <= row["small_ap"] <= 1
    assert row["macs"] > 0 and row["params"] > 0
    json.dumps(row)


def test_committed_fp32_budget_runs_name_their_candidates():
    mod = _fp32_budget()
    runs = json.loads((ROOT / "benchmarks" / "fp32_budget_runs.json").read_text())
    assert runs["budget"] == mod.BUDGET
    for r in runs["runs"]:
        assert r["candidate"] in mod.CANDIDATES and 0 <= r["map"] <= 1
        assert {"small_ap", "img_s", "iterations", "batch_size", "machine"} <= set(r)
