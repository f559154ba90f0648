"""The report's figures as PNG bytes (matplotlib's Agg renderer, no pyplot, no global state changed).

Chinese labels need a CJK font: the first of CJK_FONTS that matplotlib finds is used. On Debian and
Ubuntu `apt-get install fonts-noto-cjk` provides "Noto Sans CJK". With none, Chinese characters are
drawn as empty boxes, and the renderer says so in one line (not one per missing glyph) that the report
shows at its end.
"""

from __future__ import annotations

import io
import re
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC",
    "Droid Sans Fallback", "AR PL UMing CN",
)
CJK_FILE_HINTS = ("cjk", "wqy", "wenquanyi", "sourcehan", "droidsansfallback", "simhei", "msyh", "pingfang", "uming")
DPI = 110
NO_FONT = "Chinese glyphs fall back to boxes in the figures: no CJK font found (Debian/Ubuntu: apt-get install fonts-noto-cjk)"
_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed CJK font family matplotlib can use, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in installed), None)
    if found is None:
        # matplotlib caches its font list on first use: a font installed after that is not in it.
        for path in font_manager.findSystemFonts():
            if any(hint in Path(path).name.lower() for hint in CJK_FILE_HINTS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        installed = {f.name for f in font_manager.fontManager.ttflist}
        found = next((name for name in CJK_FONTS if name in installed), None)
    return found


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    font = cjk_font()
    rc = {"font.family": "sans-serif", "font.sans-serif": ([font] if font else []) + ["DejaVu Sans"],
          "axes.unicode_minus": False, "figure.dpi": DPI, "savefig.dpi": DPI}
    with matplotlib.rc_context(rc):
        yield


class Renderer:
    """Draws figures; remembers which glyphs were missing, to report them in one line."""

    def __init__(self) -> None:
        self.font = cjk_font()
        self.missing: dict[str, list[str]] = {}  # figure name -> characters drawn as boxes

    @property
    def warnings(self) -> list[str]:
        """At most one line: without a CJK font every Chinese character is missing, which says nothing
        more than that the font is missing; with one, the few characters it lacks, by figure."""
        if self.font is None:
            return [NO_FONT]
        if not self.missing:
            return []
        where = "; ".join(f"{name}: {''.join(chars)}" for name, chars in self.missing.items())
        return [f"some characters are missing from font {self.font!r} and show as boxes ({where})"]

    @contextmanager
    def figure(self, width: float, height: float, out: dict[str, bytes], name: str) -> Iterator[Any]:
        from matplotlib.figure import Figure

        with _style(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig = Figure(figsize=(width, height), layout="constrained")
            yield fig
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            out[name] = buf.getvalue()
        for w in caught:
            match = _GLYPH.search(str(w.message))
            if match:
                chars = self.missing.setdefault(name, [])
                if chr(int(match.group(1))) not in chars:
                    chars.append(chr(int(match.group(1))))


def render_report_figures(report: dict[str, Any]) -> tuple[dict[str, bytes], list[str]]:
    """{file name: PNG bytes} for the report's sections that have something to draw, and warnings."""
    r, out = Renderer(), {}
    conf = report.get("confusion") or {}
    if conf.get("labels"):
        confusion_figure(r, out, conf["labels"], conf["matrix"])
    curves = report.get("curves") or {}
    if curves.get("records"):
        curves_figure(r, out, curves["records"], curves.get("metric", "macro_f1"), curves.get("baseline") or [])
    if report.get("calibration"):
        reliability_figure(r, out, report["calibration"])
    if report.get("per_class"):
        per_class_figure(r, out, report["per_class"], report.get("baseline") is not None)
    return out, r.warnings


def confusion_figure(r: Renderer, out: dict[str, bytes], labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> None:
    import numpy as np

    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)  # colour = share of the true class
    k = len(labels)
    side = min(14.0, max(4.5, 0.55 * k + 2.5))
    with r.figure(side + 1.0, side, out, "confusion.png") as fig:
        ax = fig.add_subplot()
        im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(k), labels=labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_yticks(range(k), labels=labels)
        ax.set_xlabel("预测 predicted")
        ax.set_ylabel("真实 true")
        ax.set_title("混淆矩阵 confusion matrix")
        if k <= 25:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8, color="white" if share[i, j] > 0.5 else "black")
        fig.colorbar(im, ax=ax, label="share of true class")


def curves_figure(r: Renderer, out: dict[str, bytes], records: list[dict[str, Any]], metric: str, baseline: list[dict[str, Any]]) -> None:
    stepped = [rec for rec in records if "step" in rec]
    if not stepped:  # e.g. tfidf.v1: one record per regularization strength, no training loss
        dev_keys = sorted({k for rec in records for k in rec if k.startswith("dev_")})
        xkey = next((k for k in records[0] if not k.startswith("dev_")), None)
        with r.figure(6.0, 3.6, out, "curves.png") as fig:
            ax = fig.add_subplot()
            xs = [rec.get(xkey, i) for i, rec in enumerate(records)] if xkey else list(range(len(records)))
            for key in dev_keys:
                ax.plot(xs, [rec.get(key) for rec in records], marker="o", label=key)
            if xkey and all(isinstance(x, (int, float)) and x > 0 for x in xs):
                ax.set_xscale("log")
            ax.set_xlabel(xkey or "evaluation")
            ax.set_title("开发集 dev score per candidate")
            ax.legend()
            ax.grid(alpha=0.3)
        return
    base = [rec for rec in baseline if "step" in rec]
    with r.figure(10.0, 3.8, out, "curves.png") as fig:
        loss_ax, dev_ax = fig.subplots(1, 2)
        steps = [rec["step"] for rec in stepped]
        if any("train_loss" in rec for rec in stepped):
            loss_ax.plot(steps, [rec.get("train_loss") for rec in stepped], marker=".", label="run")
            if base:
                loss_ax.plot([b["step"] for b in base], [b.get("train_loss") for b in base], ls="--", color="gray", label="baseline")
        loss_ax.set_title("训练损失 train loss")
        loss_ax.set_xlabel("step")
        for key in (f"dev_{metric}", "dev_accuracy", "dev_macro_f1"):
            if any(key in rec for rec in stepped) and key not in [ln.get_label() for ln in dev_ax.lines]:
                dev_ax.plot(steps, [rec.get(key) for rec in stepped], marker=".", label=key)
        if base and any(f"dev_{metric}" in b for b in base):
            dev_ax.plot([b["step"] for b in base], [b.get(f"dev_{metric}") for b in base], ls="--", color="gray", label=f"baseline dev_{metric}")
        best = [rec for rec in stepped if rec.get("best")]
        if best and f"dev_{metric}" in best[-1]:
            dev_ax.axvline(best[-1]["step"], color="green", alpha=0.4, ls=":", label="best")
        dev_ax.set_title("开发集 dev metrics")
        dev_ax.set_xlabel("step")
        for ax in (loss_ax, dev_ax):
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)


def reliability_figure(r: Renderer, out: dict[str, bytes], cal: dict[str, Any]) -> None:
    bins = cal["bins"]
    with r.figure(5.2, 5.0, out, "calibration.png") as fig:
        ax, hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
        width = bins[0]["hi"] - bins[0]["lo"]
        centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
        ax.bar(centers, [b["accuracy"] or 0.0 for b in bins], width=width * 0.9, color="#4c72b0", label="accuracy")
        ax.plot([0, 1], [0, 1], ls="--", color="gray", label="perfect calibration")
        confs = [(c, b["confidence"]) for c, b in zip(centers, bins) if b["count"]]
        ax.plot([c for c, _ in confs], [v for _, v in confs], "o", color="orange", ms=4, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"可靠性图 reliability (ECE = {cal['ece']:.3f}, n = {cal['n']})")
        ax.legend(fontsize=8, loc="upper left")
        hist.bar(centers, [b["count"] for b in bins], width=width * 0.9, color="gray")
        hist.set_xlabel("top-1 confidence")
        hist.set_ylabel("count")


def per_class_figure(r: Renderer, out: dict[str, bytes], rows: list[dict[str, Any]], with_baseline: bool) -> None:
    import numpy as np

    labels = [row["label"] for row in rows]
    f1 = [row["f1"] or 0.0 for row in rows]
    k = len(rows)
    with r.figure(max(5.0, 0.45 * k + 2.5), 3.6, out, "per_class.png") as fig:
        ax = fig.add_subplot()
        x = np.arange(k)
        if with_baseline:
            base = [(row["f1"] - row["delta_f1"]) if row["delta_f1"] is not None else np.nan for row in rows]
            ax.bar(x - 0.2, base, width=0.4, color="lightgray", label="baseline")
            ax.bar(x + 0.2, f1, width=0.4, color="#4c72b0", label="run")
            ax.legend(fontsize=8)
        else:
            ax.bar(x, f1, color="#4c72b0")
        ax.set_xticks(x, labels=labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("F1")
        ax.set_title("各类别 F1 per class")
        ax.grid(axis="y", alpha=0.3)


def trend_png(points: list[dict[str, Any]], metric: str, split: str) -> tuple[bytes, list[str]]:
    """A metric across runs in date order; points: [{"name", "date", "commit", "value"}]."""
    r, out = Renderer(), {}
    with r.figure(max(6.0, 0.6 * len(points) + 2.0), 4.0, out, "trend.png") as fig:
        ax = fig.add_subplot()
        xs = list(range(len(points)))
        ax.plot(xs, [p["value"] for p in points], marker="o")
        ticks = [p["name"] + (f"\n{p['commit'][:8]}" if p.get("commit") else "") for p in points]
        ax.set_xticks(xs, labels=ticks, rotation=30 if len(points) > 4 else 0, ha="right" if len(points) > 4 else "center", fontsize=8)
        ax.set_ylabel(f"{split} {metric}")
        ax.set_title(f"{split} {metric} 趋势 across runs")
        ax.grid(alpha=0.3)
    return out["trend.png"], r.warnings


def text_png(text: str, fontsize: int = 40) -> bytes:
    """`text` alone on a small canvas, drawn as every report figure is (used to check that glyphs render)."""
    r, out = Renderer(), {}
    with r.figure(1.5, 1.0, out, "text.png") as fig:
        fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize)
    return out["text.png"]


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates no other beats on both latency and dev score, fastest first."""
    front, best = [], float("-inf")
    for row in sorted(rows, key=lambda row: (row["p50_ms"], -row["dev"])):
        if row["dev"] > best:
            front.append(row)
            best = row["dev"]
    return front


def write_pareto_figure(path: Path, rows: list[dict[str, Any]], metric: str, budget_ms: float | None,
                        label: Callable[[dict[str, Any]], str] = lambda row: row["name"]) -> bool:
    """Dev score against p50 latency for `zhcls build` and `zhcls compress`: the chosen candidate red, the
    others blue within budget and gray over it, int8 bundles as squares, the Pareto front dashed. Written
    atomically; False (nothing written) without matplotlib."""
    try:
        import matplotlib  # noqa: F401 - the [report] extra
    except ImportError:
        return False
    from ..artifact import write_bytes

    r, out = Renderer(), {}
    with r.figure(7.5, 4.8, out, path.name) as fig:
        ax = fig.add_subplot()
        for row in rows:
            color = "tab:red" if row.get("chosen") else "tab:blue" if row.get("within_budget", True) else "tab:gray"
            ax.scatter(row["p50_ms"], 100 * row["dev"], color=color, marker="s" if row.get("precision") == "int8" else "o", zorder=3)
            ax.annotate(label(row), (row["p50_ms"], 100 * row["dev"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        front = pareto_front(rows)
        ax.plot([row["p50_ms"] for row in front], [100 * row["dev"] for row in front], color="tab:gray", linestyle="--", label="Pareto front")
        if budget_ms is not None:
            ax.axvline(budget_ms, color="tab:red", linestyle=":", label=f"budget {budget_ms} ms")
        fastest = min(row["p50_ms"] for row in rows)
        if fastest > 0 and max(row["p50_ms"] for row in rows) > 10 * fastest:  # e.g. TF-IDF beside an ensemble
            ax.set_xscale("log")
        ax.set_xlabel(f"p50 latency per text, ms (1 thread, tokenization included{', log scale' if ax.get_xscale() == 'log' else ''})")
        ax.set_ylabel(f"dev {metric} (%)")
        ax.set_title("circles fp32, squares int8; gray: over budget", fontsize=9)
        ax.legend(loc="lower right")
    write_bytes(path, out[path.name])
    return True
