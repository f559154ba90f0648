"""What every benchmark here shares: the tasks, the SHA256SUMS check, the environment record, results
written atomically and resumed, and Markdown tables.

Imported by the scripts beside it (`python benchmarks/NAME.py` puts this folder on sys.path):

    from _harness import TASKS, environment, load_results, verify_data, write_results
    verify_data(data_dir, [f for t in tasks for f in t.files()])      # exits naming the file on a mismatch
    results = load_results(RESULTS / "x.json", {"invocations": [], "results": {}})   # resume: done cells stay
    results["invocations"].append(environment("benchmarks/x.py", argv, "torch", "sklearn"))
    write_results(RESULTS / "x.json", results, render_markdown)        # JSON and Markdown, each atomically
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from zhcls.artifact import sha256_file  # noqa: F401 - also the scripts' (h.sha256_file)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def default_data_dir() -> Path:
    """$ZHCLS_DATA_DIR, else ../shared/data beside the repository (where the configs look too)."""
    return Path(os.environ.get("ZHCLS_DATA_DIR", str(REPO.parent / "shared" / "data")))


# -- tasks ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One data set: files relative to the data directory (an absolute path, e.g. a subset written by a
    script, stays itself: data_dir / path)."""

    name: str  # "tnews/few_all", "online_shopping/cat"
    train: str
    dev: str
    test: str
    text_field: str
    label_field: str
    large: bool = False  # tens of thousands of examples (online_shopping) rather than a few-shot split
    unlabeled: str | None = None  # unlabeled text of the same kind (FewCLUE's unlabeled.json)

    def under(self, data_dir: Path, name: str | None = None) -> "Task":
        """The same task with absolute file paths (and another `name`, where a script's results use one)."""
        def at(p: str | None) -> str | None:
            return None if p is None else str(data_dir / p)

        return Task(name or self.name, at(self.train), at(self.dev), at(self.test), self.text_field, self.label_field,  # type: ignore[arg-type]
                    self.large, at(self.unlabeled))

    def files(self) -> list[str]:
        return [self.train, self.dev, self.test, *([self.unlabeled] if self.unlabeled else [])]

    def read(self, data_dir: Path) -> list[list[Any]]:
        """[train, dev, test] Examples, read as zhcls reads them."""
        from zhcls.data.readers import ReadOptions, read_examples

        opts = ReadOptions(text_field=self.text_field, label_field=self.label_field)
        return [read_examples(data_dir / p, opts) for p in (self.train, self.dev, self.test)]


# FewCLUE task -> (text field, label field)
FEWCLUE_FIELDS = {"tnews": ("sentence", "label_desc"), "eprstmt": ("sentence", "label"), "iflytek": ("sentence", "label_des"), "csldcp": ("content", "label")}
FEWCLUE_UNLABELED = ("tnews", "eprstmt")  # the FewCLUE tasks ../shared/data ships an unlabeled.json for
ONLINE_SHOPPING = "online_shopping_10_cats"


def fewclue(task: str, split: str = "few_all") -> Task:
    """A FewCLUE task: train_SPLIT / dev_SPLIT (split "0" to "4" or "few_all"), scored on test_public."""
    d = f"fewclue/{task}"
    text_field, label_field = FEWCLUE_FIELDS[task]
    return Task(f"{task}/{split}", f"{d}/train_{split}.json", f"{d}/dev_{split}.json", f"{d}/test_public.json", text_field, label_field,
                unlabeled=f"{d}/unlabeled.json" if task in FEWCLUE_UNLABELED else None)


def online_shopping(label_field: str = "cat") -> Task:
    """online_shopping_10_cats: 10 product categories ("cat") or sentiment ("label")."""
    d = ONLINE_SHOPPING
    return Task(f"online_shopping/{label_field}", f"{d}/train.csv", f"{d}/dev.csv", f"{d}/test.csv", "review", label_field, large=True)


# Listed (and shown in the Markdown) by data set: FewCLUE first, online_shopping last.
TASKS: list[Task] = [
    *(fewclue(name, split) for name in FEWCLUE_FIELDS for split in ("0", "few_all")),
    *(online_shopping(lf) for lf in ("cat", "label")),
]


def task(name: str) -> Task:
    for t in TASKS:
        if t.name == name:
            return t
    sys.exit(f"error: unknown task {name!r}; choose from {[t.name for t in TASKS]}")


def verify_data(data_dir: Path, files: Sequence[str]) -> dict[str, str]:
    """Check every file against the data directory's SHA256SUMS; exit naming each problem (not listed,
    missing, changed) rather than benchmark on other data than the results say. Returns {file: sha256}."""
    sums_file = data_dir / "SHA256SUMS"
    if not sums_file.is_file():
        sys.exit(f"error: {sums_file} not found; is --data-dir (or ZHCLS_DATA_DIR) pointing at shared/data?")
    expected = {}
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            expected[name.lstrip("*").removeprefix("./")] = digest
    checked, problems = {}, []
    for rel in sorted(set(files)):
        path = data_dir / rel
        if rel not in expected:
            problems.append(f"{rel}: not listed in SHA256SUMS")
        elif not path.is_file():
            problems.append(f"{rel}: missing")
        else:
            digest = sha256_file(path)
            if digest != expected[rel]:
                problems.append(f"{rel}: sha256 {digest} != SHA256SUMS {expected[rel]}")
            checked[rel] = digest
    if problems:
        sys.exit("error: data does not match SHA256SUMS, refusing to benchmark:\n  " + "\n  ".join(problems))
    return checked


# -- environment ----------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def dist_versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git(*args: str) -> str:
    """`git ARGS` in the repository, stripped stdout; "" without git or outside a checkout."""
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_state() -> dict[str, Any]:
    return {"commit": git("rev-parse", "HEAD"), "dirty_tracked_files": bool(git("status", "--porcelain", "--untracked-files=no"))}


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "os_cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
    }


def command_line(script: str, argv: Sequence[str], prefix: str = ".venv/bin/python") -> str:
    return " ".join(shlex.quote(a) for a in [*prefix.split(), script, *argv])


def environment(script: str, argv: Sequence[str], *packages: str, prefix: str = ".venv/bin/python") -> dict[str, Any]:
    """Where and how a benchmark ran: start time, the command, the machine, the versions of Python, zhcls
    and `packages` (distribution names), the git commit and whether tracked files differed from it."""
    return {
        "started": now(),
        "command": command_line(script, argv, prefix),
        "machine": machine(),
        "versions": {"python": platform.python_version(), **dist_versions("zhcls", *packages)},
        "git": git_state(),
    }


# -- results --------------------------------------------------------------------------------------------
def atomic_write(path: Path, text: str) -> None:
    """Write beside `path`, fsync, rename over it: a killed benchmark leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(path: Path, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results so far (a rerun resumes: finished cells are skipped), or a copy of `empty`."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return json.loads(json.dumps(empty or {}))


def write_results(path: Path, results: dict[str, Any], render: Callable[[dict[str, Any]], str] | None = None, *, indent: int = 2) -> None:
    """`path` (JSON) and, with `render`, the Markdown beside it (same stem, .md); each atomically."""
    atomic_write(path, json.dumps(results, ensure_ascii=False, indent=indent) + "\n")
    if render is not None:
        atomic_write(path.with_suffix(".md"), render(results))


def add_run(path: Path, run: dict[str, Any], render: Callable[[dict[str, Any]], str],
            restart: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """For scripts whose results are a list of runs: `run` added to those at `path` (a fresh list when
    `restart(results, run)` says the earlier runs measured something else), written with their Markdown."""
    results = load_results(path, {"runs": []})
    if restart is not None and restart(results, run):
        results = {"runs": []}
    results["runs"].append(run)
    write_results(path, results, render)
    return results


def p50_us(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """The median time of `fn(item)` over `items`, in microseconds: one call at a time, as a served request."""
    import time

    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    times.sort()
    mid = len(times) // 2
    return (times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2) * 1e6


# -- Markdown -------------------------------------------------------------------------------------------
def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    """A Markdown table as lines; `align` one character per column, "l" or "r" (default: first column
    left, the others right, as numbers read best)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return ["| " + " | ".join(map(str, header)) + " |", rule, *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage without the sign ("—" for none)."""
    return "—" if x is None else f"{100 * x:.{digits}f}"


def width0_summary(cells: dict[str, Any], change_key: str) -> str | None:
    """The compression benchmarks' sentence on their width-0 cells (a hybrid's n-gram bag alone), or None
    without any: fp32 size and p50 ratios and the test change (`change_key`, in points) of each."""
    bag = [(name, c) for name, c in cells.items() if name.startswith("w0") and "fp32" in c]
    if not bag:
        return None
    return ("Width 0 keeps the parent's n-gram bag alone, as a fasttext.v1 run (one table of class scores per id, the `bag_folded` graph): "
            + "; ".join(f"{name}: size {100 * c['fp32']['size_ratio']:.1f}%, p50 {100 * c['fp32']['p50_ratio']:.1f}%, test {c[change_key]:+.2f} points"
                        for name, c in bag))
