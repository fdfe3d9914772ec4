"""One pass makes the book: the main job, every chapter, a stamp on each page, the
package.

    # the whole book (what `make book-run` runs)
    python tools/run_book.py
    # nothing runs: list the pages whose stamp is stale
    python tools/run_book.py --check
    # only these (no export)
    python tools/run_book.py nbs/07_loss.ipynb nbs/08_augmentation.ipynb

A full pass

1. runs the main job (`python -m ssdbook demo`) when its checkpoint `runs/demo/last.pth`
   is missing or stale: older than the last commit that changed a module the job
   imports, or recorded (in `runs/demo/book_stamp.json`, written here after the job)
   with another library commit or version; a stale run folder is moved aside
   (`runs/demo.stale-<time>`), never deleted;
2. executes every chapter in `_toc.yml` order, in place, with full budgets
   (`SSDBOOK_QUICK` unset); a notebook is written (atomically) only when it ran without
   error;
3. stamps each executed notebook's metadata (`metadata.ssdbook`) with the library commit
   (the last commit touching `ssdbook/`, and whether the tree had uncommitted changes)
   and the machine (CPU model, torch's CPU capability, native bf16, threads); the
   kernels see the same stamp as JSON in `SSDBOOK_BOOK_STAMP`, so the front page can
   print it;
4. runs `nbdev_export` and `ruff format ssdbook` (what `make export` does).

A page is stale when its stamp is missing, or when its stamp commit does not contain the
last commit that changed a module it imports, directly or through other modules
(`ssdbook/X.py`, which `nbdev_export` writes from the chapter that owns it).
`tests/test_book_stamps.py` runs `--check`.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "ssdbook"
MAIN_OUT = ROOT / "runs" / "demo"
MAIN_CKPT = MAIN_OUT / "last.pth"
MAIN_STAMP = MAIN_OUT / "book_stamp.json"
# where `python -m ssdbook demo` starts
MAIN_ENTRY = [
    "__main__",
    "cli",
    "commands",
    "inference",
]


# ------------------------------------------------------------------ git
def git(*args, check=True) -> str:
    r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def last_commit(*paths) -> str | None:
    "The last commit that changed any of `paths` (None when none did)."
    out = git("log", "-1", "--format=%H", "--", *map(str, paths))
    return out or None


def contains(commit: str, ancestor: str) -> bool:
    "Whether `commit` has `ancestor` in its history (or is it)."
    r = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, commit],
        cwd=ROOT,
        capture_output=True,
    )
    return r.returncode == 0


def library_commit() -> dict:
    """The last commit touching the package, and whether the package has uncommitted
    changes."""
    commit = last_commit(PKG)
    dirty = bool(git("status", "--porcelain", "--", PKG, "nbs"))
    return {"library_commit": commit, "library_dirty": dirty}


# ------------------------------------------------------------------ the machine
def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    bf16 = any(getattr(torch.cpu, f, lambda: False)() for f in probes)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bf16,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def make_stamp() -> dict:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {**library_commit(), "executed": now, "machine": machine()}


# ------------------------------------------------------------------ which module a page
# depends on
_IMPORT = re.compile(
    rf"^\s*(?:from\s+{PKG}\.(\w+)\s+import|import\s+{PKG}\.(\w+))", re.M
)


def imports_of_source(src: str) -> set[str]:
    """The `ssdbook.X` modules a piece of Python source imports (at any depth, in
    functions too)."""
    try:
        tree = ast.parse(src)
    except SyntaxError:  # notebook magics (`%pip`): fall back to a line scan
        return {a or b for a, b in _IMPORT.findall(src)}
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom) and node.level == 1
        ):  # `from .loss import` (nbdev's form)
            found |= (
                {node.module.split(".")[0]}
                if node.module
                else {a.name for a in node.names}
            )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == PKG and len(parts) > 1:
                found.add(parts[1])
            elif node.module == PKG:
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[1] for a in node.names if a.name.startswith(PKG + ".")
            }
    return found


def module_graph() -> dict[str, set[str]]:
    "module -> the package modules it imports."
    return {
        p.stem: imports_of_source(p.read_text()) - {p.stem}
        for p in (ROOT / PKG).glob("*.py")
        if p.stem != "_modidx"
    }


def closure(mods, graph) -> set[str]:
    seen, todo = set(), list(mods)
    while todo:
        m = todo.pop()
        if m in seen or m not in graph:
            continue
        seen.add(m)
        todo += graph[m]
    return seen


def notebook_code(nb: dict) -> str:
    return "\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
    )


def own_module(nb: dict) -> str | None:
    m = re.search(r"^#\|\s*default_exp\s+(\w+)", notebook_code(nb), re.M)
    return m.group(1) if m else None


def page_modules(nb: dict, graph) -> set[str]:
    "Every package module a page runs: the ones its cells import, and theirs in turn."
    direct = imports_of_source_lines(notebook_code(nb))
    own = own_module(nb)
    mods = closure(direct | ({own} if own else set()), graph)
    # the page's own module is defined by the page itself; what it imports still counts
    if own:
        mods = (mods - {own}) | closure(graph.get(own, set()), graph)
    return mods


def imports_of_source_lines(src: str) -> set[str]:
    "Imports in notebook code (magics and `!` lines blanked so the code parses)."
    lines = [("" if l.lstrip().startswith(("%", "!")) else l) for l in src.splitlines()]
    return imports_of_source("\n".join(lines))


# ------------------------------------------------------------------ the book's order
def toc_notebooks() -> list[Path]:
    files = re.findall(
        r"^\s*(?:root|-\s*file):\s*(\S+)", (ROOT / "_toc.yml").read_text(), re.M
    )
    return [ROOT / (f + ".ipynb") for f in files if (ROOT / (f + ".ipynb")).exists()]


# ------------------------------------------------------------------ staleness
def page_problem(path: Path, graph, _cache={}) -> str | None:
    "Why a page's outputs are stale (None when they are current)."
    nb = json.loads(path.read_text())
    stamp = nb.get("metadata", {}).get(PKG)
    if not stamp or not stamp.get("library_commit"):
        return "no stamp (never executed by tools/run_book.py)"
    commit = stamp["library_commit"]
    newer = []
    for m in sorted(page_modules(nb, graph)):
        if m not in _cache:
            _cache[m] = last_commit(ROOT / PKG / f"{m}.py")
        changed = _cache[m]
        if changed and not contains(commit, changed):
            newer.append(f"{m} ({changed[:8]})")
    if newer:
        return f"stamp {commit[:8]} is older than the last change to " + ", ".join(
            newer
        )
    return None


def check(paths) -> list[tuple[Path, str]]:
    graph = module_graph()
    return [(p, why) for p in paths if (why := page_problem(p, graph))]


# ------------------------------------------------------------------ the main job
def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main_job_problem() -> str | None:
    "Why the main job must run again (None when its checkpoint is current)."
    if not MAIN_CKPT.exists():
        return f"no checkpoint {_rel(MAIN_CKPT)}"
    graph = module_graph()
    mods = closure(MAIN_ENTRY, graph)
    changed = last_commit(*(ROOT / PKG / f"{m}.py" for m in sorted(mods)))
    if changed:
        when = int(git("log", "-1", "--format=%ct", changed))
        if MAIN_CKPT.stat().st_mtime < when:
            return (
                f"checkpoint older than commit {changed[:8]}, "
                "the last change to the modules it runs"
            )
    if not MAIN_STAMP.exists():
        return "no record of the library that made it (runs/demo/book_stamp.json)"
    rec = json.loads(MAIN_STAMP.read_text())
    now = library_commit()
    if rec.get("library_commit") != now["library_commit"]:
        made, current = str(rec.get("library_commit"))[:8], now["library_commit"]
        return f"made by library commit {made}, now {str(current)[:8]}"
    if rec.get("version") != package_version():
        return f"made by ssdbook {rec.get('version')}, now {package_version()}"
    return None


def package_version() -> str:
    m = re.search(r"^version\s*=\s*(\S+)", (ROOT / "settings.ini").read_text(), re.M)
    return m.group(1) if m else "?"


def run_main_job(env) -> None:
    if MAIN_OUT.exists():  # a stale run must not be resumed: move it aside, keep it
        aside = MAIN_OUT.with_name(f"demo.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(MAIN_OUT, aside)
        print(f"   moved the stale run to {_rel(aside)}")
    subprocess.run([sys.executable, "-m", PKG, "demo"], cwd=ROOT, env=env, check=True)
    rec = {
        **library_commit(),
        "version": package_version(),
        "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    atomic_write_text(MAIN_STAMP, json.dumps(rec, indent=1) + "\n")


# ------------------------------------------------------------------ executing a page
def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def execute(path: Path, stamp: dict | None = None, timeout: int = 3600) -> None:
    """Run a notebook in place with full budgets (outputs and execution counts kept, as
    nbval needs them); stamp it; write it only if every cell ran."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_quick = os.environ.pop("SSDBOOK_QUICK", None)
    if stamp:
        os.environ["SSDBOOK_BOOK_STAMP"] = json.dumps(stamp)
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        if env_quick is not None:
            os.environ["SSDBOOK_QUICK"] = env_quick
        os.environ.pop("SSDBOOK_BOOK_STAMP", None)
    if stamp:
        nb.metadata[PKG] = stamp
    text = nbformat.writes(nb)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def full_budget_env() -> dict:
    env = dict(os.environ)
    env.pop("SSDBOOK_QUICK", None)
    return env


def tool(name: str) -> str:
    "A console script of this environment (the venv's, even when it is not activated)."
    for here in (Path(sys.executable).with_name(name), ROOT / ".venv" / "bin" / name):
        if here.exists():
            return str(here)
    return shutil.which(name) or name


# ------------------------------------------------------------------ command line
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="only these chapters (default: the whole book)",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="run nothing; list stale pages (exit 1 if any)",
    )
    ap.add_argument(
        "--skip-main", action="store_true", help="do not run the main job even if stale"
    )
    ap.add_argument("--no-stamp", action="store_true", help="execute without stamping")
    ap.add_argument(
        "--keep-going", action="store_true", help="go on after a chapter fails"
    )
    ap.add_argument(
        "--timeout", type=int, default=3600, help="seconds per cell (default 3600)"
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="say what a pass would run, run nothing"
    )
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or toc_notebooks()
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"run_book: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.check:
        stale = check(paths)
        for p, why in stale:
            print(f"stale: {_rel(p)}: {why}")
        print(
            f"{len(stale)} of {len(paths)} pages stale"
            + (": run `make book-run`" if stale else "")
        )
        return 1 if stale else 0

    whole_book = not args.notebooks
    if args.dry_run:
        why = main_job_problem() if whole_book and not args.skip_main else None
        print(f"main job: {'run (' + why + ')' if why else 'skip'}")
        print(f"chapters, in this order: {', '.join(p.stem for p in paths)}")
        print(f"stamp: {json.dumps(make_stamp())}")
        print(
            "then: nbdev_export, ruff format ssdbook"
            if whole_book
            else "then: nothing (make export)"
        )
        return 0
    if whole_book and not args.skip_main:
        why = main_job_problem()
        if why:
            print(f"== main job: {why}: python -m ssdbook demo", flush=True)
            run_main_job(full_budget_env())
        else:
            print("== main job: checkpoint current", flush=True)
    stamp = None if args.no_stamp else make_stamp()
    if stamp and stamp["library_dirty"]:
        print(
            "note: ssdbook/ or nbs/ has uncommitted changes: the stamp says so",
            flush=True,
        )
    failed = []
    for p in paths:
        t0 = time.perf_counter()
        print(f"== {_rel(p)}", end=" ", flush=True)
        try:
            execute(p, stamp, args.timeout)
        except Exception as e:  # noqa: BLE001 - report and stop (or go on)
            first = (
                str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            )
            print(f"FAILED: {first}", flush=True)
            failed.append(p)
            if not args.keep_going:
                break
            continue
        print(f"{time.perf_counter() - t0:.0f} s", flush=True)
    if not failed and not whole_book:
        print("(chapters only: run `make export` to write the package from them)")
    # = make export: the modules from the notebooks, formatted as tests/test_style.py
    # asks
    elif not failed:
        subprocess.run([tool("nbdev_export")], cwd=ROOT, check=True)
        subprocess.run([tool("ruff"), "format", "--quiet", PKG], cwd=ROOT, check=True)
    if failed:
        print(
            f"run_book: {len(failed)} chapter(s) failed: "
            + ", ".join(_rel(p) for p in failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
