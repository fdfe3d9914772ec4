"""Derive the repository's slimmed golden file from the full reference golden data.

The full file (../shared/reference/ssd_pytorch_golden.pt, 33 MB) was produced by running the reference PyTorch SSD,
amdegroot/ssd.pytorch at commit 5b0b77faa955c1917b0c710d770739ba8fbff9b7, on CPU (torch 2.14.1). The book and the
tests need every case in it, but most of its bytes are random *inputs* drawn from seeded generators:

* `loss_cases[i]`: `loc_data (B,8732,4)` and `conf_data (B,8732,21)` are
  `g = torch.Generator().manual_seed(seed); randn(B,P,4, generator=g); randn(B,P,21, generator=g)`;
* `decode_nms_cases`: `torch.manual_seed(777)`, then for "dense" `loc = 0.5*randn(P,4)`,
  `conf = softmax(2*randn(P,21))`, and for "sparse" (the same stream, continued) the same with +12 added to the
  background logit.

This script replaces those inputs by their recipe and a SHA-256 of their bytes (ssdbook.reference regenerates them and
checks the hash), stores integer class targets as uint8 (restored to int64 on load), checks that every regenerated
input is bit-identical to the full file, and writes `ssdbook/reference_data/ssd_pytorch_golden_slim.pt`. Every output
of the reference (priors, IoUs, loc_t, conf_t, losses, masks, detections) is kept bit for bit.

    python tools/slim_golden.py [FULL_FILE] [OUT_FILE]
"""
import hashlib
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT.parent / "shared" / "reference" / "ssd_pytorch_golden.pt"
OUT = ROOT / "ssdbook" / "reference_data" / "ssd_pytorch_golden_slim.pt"
P, C = 8732, 21


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def small_int(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) < 256
    return t.to(torch.uint8)


def slim_loss_case(case: dict) -> dict:
    out = dict(case)
    g = torch.Generator().manual_seed(int(case["seed"]))
    loc = torch.randn(case["batch_size"], P, 4, generator=g)
    conf = torch.randn(case["batch_size"], P, C, generator=g)
    assert torch.equal(loc, case["loc_data"]) and torch.equal(conf, case["conf_data"]), case["name"]
    del out["loc_data"], out["conf_data"]
    out["inputs_recipe"] = {"kind": "loss", "seed": int(case["seed"]), "batch_size": case["batch_size"],
                            "sha256_loc_data": sha(loc), "sha256_conf_data": sha(conf)}
    out["conf_t"] = small_int(case["conf_t"])
    return out


def slim_decode_cases(cases: list) -> list:
    torch.manual_seed(777)
    out = []
    for case, background_boost in zip(cases, (0.0, 12.0)):
        loc = 0.5 * torch.randn(P, 4)
        z = 2 * torch.randn(P, C)
        z[:, 0] += background_boost
        conf = torch.softmax(z, 1)
        assert torch.equal(loc, case["loc"]) and torch.equal(conf, case["conf_scores"]), case["name"]
        c = dict(case)
        del c["loc"], c["conf_scores"]
        c["inputs_recipe"] = {"kind": "decode_nms", "seed": 777, "background_boost": background_boost,
                              "sha256_loc": sha(loc), "sha256_conf_scores": sha(conf)}
        out.append(c)
    return out


def slim(full: dict) -> dict:
    out = dict(full)
    out["loss_cases"] = [slim_loss_case(c) for c in full["loss_cases"]]
    out["decode_nms_cases"] = slim_decode_cases(full["decode_nms_cases"])
    out["match_cases"] = [{**c, "conf_t": small_int(c["conf_t"])} for c in full["match_cases"]]
    out["slim"] = {"derived_by": "tools/slim_golden.py", "int_fields_stored_as": "uint8 (conf_t)",
                   "regenerated_inputs": "loss_cases loc_data/conf_data, decode_nms_cases loc/conf_scores"}
    return out


def main(full_path=FULL, out_path=OUT):
    full = torch.load(full_path, weights_only=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim(full), out_path)
    print(f"{out_path}: {out_path.stat().st_size / 2**20:.2f} MiB (from {Path(full_path).stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
