"""Derive the repository's slimmed golden file from the full reference golden data, and
check it.

The full file (../shared/reference/ssd_pytorch_golden.pt, 33 MB) was produced by running
the reference PyTorch SSD, amdegroot/ssd.pytorch at commit
5b0b77faa955c1917b0c710d770739ba8fbff9b7, on CPU (torch 2.14.1). The book and the tests
need every case in it, but most of its bytes are random *inputs*:

* `loss_cases[i]`: `loc_data (B,8732,4)` and `conf_data (B,8732,21)`, drawn as `g =
  torch.Generator().manual_seed(seed); randn(B,P,4, generator=g); randn(B,P,21,
  generator=g)`;
* `decode_nms_cases`: after `torch.manual_seed(777)`, for "dense" `loc =
  0.5*randn(P,4)`, `conf = softmax(2*randn(P,21))`, and for "sparse" (the same stream,
  continued) the same with +12 added to the background logit.

Those bytes are not reproducible with `torch.randn`/`torch.softmax` on another CPU
(their log/sin/cos/exp are vectorised per instruction set), so they are shipped: as a
portable prediction (`ssdbook.reference`: the same MT19937 integer stream, Box-Muller
and softmax with correctly rounded float64 series) plus, per number, the int8 correction
in ulps from the prediction to the reference's float32 bits, lzma-compressed, plus the
SHA-256 of the exact bytes. Integer class targets are stored as uint8 (restored to int64
on load). Every output of the reference (priors, IoUs, loc_t, conf_t, losses, masks,
detections) is kept bit for bit.

This script is the one place that makes the shipped file: it reads the full file, writes
`ssdbook/reference_data/ssd_pytorch_golden_slim.pt`, then loads what it wrote with
`ssdbook.reference.load_golden` and checks that the result equals the full file bit for
bit (every key, every tensor). It never calls torch's random number generator, so it
gives the same file on any CPU.

    python tools/slim_golden.py [FULL_FILE] [OUT_FILE]
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import ssdbook.reference as ref  # noqa: E402

FULL = ROOT.parent / "shared" / "reference" / "ssd_pytorch_golden.pt"
OUT = ROOT / "ssdbook" / "reference_data" / "ssd_pytorch_golden_slim.pt"
BOOSTS = (0.0, 12.0)  # background logit boost of the decode cases "dense" and "sparse"


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def small_int(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) < 256
    return t.to(torch.uint8)


def slim_loss_case(case: dict) -> dict:
    out = dict(case)
    exact = [case["loc_data"].numpy(), case["conf_data"].numpy()]
    pred = ref._predict_loss_inputs(int(case["seed"]), case["batch_size"])
    del out["loc_data"], out["conf_data"]
    out["inputs_recipe"] = {
        "kind": "loss",
        "seed": int(case["seed"]),
        "batch_size": case["batch_size"],
        "sha256_loc_data": sha(case["loc_data"]),
        "sha256_conf_data": sha(case["conf_data"]),
        "correction": ref._pack_correction(exact, pred),
    }
    out["conf_t"] = small_int(case["conf_t"])
    return out


def slim_decode_cases(cases: list) -> list:
    pred = ref._predict_decode_inputs(777, list(BOOSTS))
    out = []
    for case, boost, p in zip(cases, BOOSTS, pred):
        c = dict(case)
        del c["loc"], c["conf_scores"]
        exact = [case["loc"].numpy(), case["conf_scores"].numpy()]
        c["inputs_recipe"] = {
            "kind": "decode_nms",
            "seed": 777,
            "background_boost": boost,
            "sha256_loc": sha(case["loc"]),
            "sha256_conf_scores": sha(case["conf_scores"]),
            "correction": ref._pack_correction(exact, p),
        }
        out.append(c)
    return out


def slim(full: dict) -> dict:
    out = dict(full)
    out["loss_cases"] = [slim_loss_case(c) for c in full["loss_cases"]]
    out["decode_nms_cases"] = slim_decode_cases(full["decode_nms_cases"])
    out["match_cases"] = [
        {**c, "conf_t": small_int(c["conf_t"])} for c in full["match_cases"]
    ]
    out["slim"] = {
        "derived_by": "tools/slim_golden.py",
        "int_fields_stored_as": "uint8 (conf_t)",
        "shipped_inputs": "loss_cases loc_data/conf_data, "
        "decode_nms_cases loc/conf_scores: "
        "portable prediction + lzma int8 ulp correction + SHA-256",
    }
    return out


def assert_equal(a, b, where="golden"):
    "Bit-identical: same types, keys, dtypes, shapes and bytes (NaN equals NaN)."
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(
            a.reshape(-1).numpy().view(np.uint8), b.reshape(-1).numpy().view(np.uint8)
        ), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def main(full_path=FULL, out_path=OUT):
    full = torch.load(full_path, weights_only=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    torch.save(slim(full), tmp)
    rebuilt = ref.load_golden.__wrapped__(
        tmp
    )  # not the cache: read what was just written
    assert_equal({k: v for k, v in rebuilt.items() if k != "slim"}, full)
    tmp.replace(out_path)
    print(
        f"{out_path}: {out_path.stat().st_size / 2**20:.2f} MiB "
        f"(from {Path(full_path).stat().st_size / 2**20:.1f} MiB); "
        f"load_golden() of it equals the full file bit for bit"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
