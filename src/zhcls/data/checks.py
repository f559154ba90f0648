"""Data diagnostics behind `zhcls data check`: pure functions over Examples, no printing.

Texts are compared the way a model sees them, after `normalize()`: two rows that differ only in
full-width forms, white space or (by default) letter case are the same text to every zhcls model.

Severity policy (the CLI exits 1 when there is any error):
- error: the data is wrong for training or evaluation as it stands: empty texts, missing labels,
  the same text under different labels, train texts repeated in dev/test (leakage), dev/test
  labels the train split never shows, an empty or unlabeled train split.
- warning: worth a look, but training works: repeated texts, full-width letters/digits, invisible
  characters, texts longer than max_len, a strong label imbalance, dev/test overlap.
- info: facts that need no action (full-width Chinese punctuation, an unlabeled dev/test split).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..text.normalize import CONTROL, INVISIBLE, normalize
from ..text.tokenizers import get_tokenizer
from .example import Example

SEVERITIES = ("error", "warning", "info")
PERCENTILES = (50, 90, 95, 99)
IMBALANCE_RATIO = 10.0  # largest / smallest train label count above which a warning is given

_INVISIBLE_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in INVISIBLE + CONTROL) + "]")
# Full-width letters and digits are rare and usually come from an input method or OCR; the
# full-width punctuation (，！？：) is ordinary Chinese typography, so it only gets an info line.
_FULLWIDTH_ALNUM_RE = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+")
_FULLWIDTH_PUNCT_RE = re.compile("[\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff5e\u3000]")


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning" | "info"
    code: str  # stable name for scripts: "leakage", "empty-text", ...
    message: str
    count: int  # how many rows (or texts, labels) the problem covers; `locations` holds the first few
    locations: list[str] = field(default_factory=list)  # "path:line", optionally followed by a note
    split: str | None = None


@dataclass
class SplitStats:
    split: str
    file: str | None
    n: int
    labeled: int
    labels: dict[str, int]  # most frequent first
    chars: dict[str, float] | None  # min, p50, p90, p95, p99, max, mean of the normalized text
    tokens: dict[str, float] | None
    truncated: int  # texts with more than max_len tokens

    @property
    def truncated_share(self) -> float:
        return self.truncated / self.n if self.n else 0.0


@dataclass
class DataReport:
    tokenizer: str
    max_len: int
    lowercase: bool
    stats: dict[str, SplitStats]
    problems: list[Problem]

    def by_severity(self, severity: str) -> list[Problem]:
        return [p for p in self.problems if p.severity == severity]

    @property
    def errors(self) -> list[Problem]:
        return self.by_severity("error")

    @property
    def warnings(self) -> list[Problem]:
        return self.by_severity("warning")

    def to_dict(self) -> dict:
        splits = {}
        for name, s in self.stats.items():
            splits[name] = {**asdict(s), "truncated_share": s.truncated_share}
        return {
            "tokenizer": self.tokenizer,
            "max_len": self.max_len,
            "lowercase": self.lowercase,
            "splits": splits,
            "problems": [asdict(p) for p in self.problems],
            "errors": len(self.errors),
            "warnings": len(self.warnings),
        }


def check_data(
    splits: dict[str, Sequence[Example]],
    *,
    tokenizer: str = "char.v1",
    max_len: int = 256,
    lowercase: bool = True,
    max_locations: int = 5,
) -> DataReport:
    """Statistics and problems of `splits` ({"train": [...], "dev": [...], "test": [...]}; any split
    may be missing). `max_locations` caps the locations kept per problem (0 keeps all)."""
    tokenize = get_tokenizer(tokenizer)
    keep = max_locations if max_locations > 0 else None
    stats: dict[str, SplitStats] = {}
    keys: dict[str, list[str]] = {}
    problems: list[Problem] = []
    for name, examples in splits.items():
        examples = list(examples)
        norm = [normalize(ex.text, lowercase=lowercase) for ex in examples]
        n_tokens = [len(tokenize(t)) for t in norm]
        keys[name] = norm
        stats[name] = _split_stats(name, examples, norm, n_tokens, max_len)
        problems += _split_problems(name, examples, norm, n_tokens, max_len, keep)
    train = splits.get("train")
    if train is not None:
        problems += _label_problems(splits, stats, keep)
        for other in ("dev", "test"):
            if other in splits:
                problems += _overlap(list(train), keys["train"], "train", list(splits[other]), keys[other], other, keep, "error")
    if "dev" in splits and "test" in splits:
        problems += _overlap(list(splits["dev"]), keys["dev"], "dev", list(splits["test"]), keys["test"], "test", keep, "warning")
    order = {s: i for i, s in enumerate(SEVERITIES)}
    problems.sort(key=lambda p: order[p.severity])  # stable: within a severity, discovery order
    return DataReport(tokenizer, max_len, lowercase, stats, problems)


def training_problems(splits: dict[str, Sequence[Example]], params: object) -> list[Problem]:
    """The errors and warnings `zhcls data check` would report for a run's splits, checked with the
    model's text settings (`params`: its Params). Info lines are left out, and so are lengths for a
    model that cuts no text at max_len (tfidf.v1) or counts tokens its own way (transformer.v1)."""
    settings = {"tokenizer": getattr(params, "tokenizer", "char.v1"), "max_len": getattr(params, "max_len", None),
                "lowercase": getattr(params, "lowercase", True)}
    cuts = isinstance(settings["max_len"], int) and isinstance(settings["tokenizer"], str)
    if not cuts:
        settings.update(tokenizer="char.v1", max_len=10**9)
    report = check_data(splits, max_locations=1, **settings)
    return [p for p in report.problems if p.severity != "info" and (cuts or p.code != "truncated")]


def _describe(values: Sequence[int]) -> dict[str, float] | None:
    if not len(values):
        return None
    a = np.asarray(values)
    out = {"min": int(a.min())}
    # inverted_cdf gives a length that occurs in the data: "p95 = 120" means 95% have at most 120.
    out.update({f"p{q}": int(np.percentile(a, q, method="inverted_cdf")) for q in PERCENTILES})
    out.update({"max": int(a.max()), "mean": round(float(a.mean()), 1)})
    return out


def _split_stats(name: str, examples: list[Example], norm: list[str], n_tokens: list[int], max_len: int) -> SplitStats:
    labels = Counter(ex.label for ex in examples if ex.label)
    return SplitStats(
        split=name,
        file=examples[0].file if examples else None,
        n=len(examples),
        labeled=sum(1 for ex in examples if ex.label),
        labels=dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))),
        chars=_describe([len(t) for t in norm]),
        tokens=_describe(n_tokens),
        truncated=sum(1 for n in n_tokens if n > max_len),
    )


def _problem(severity: str, code: str, split: str, message: str, locations: Iterable[str], count: int, keep: int | None) -> Problem:
    locs = []
    for loc in locations:
        if keep is not None and len(locs) >= keep:
            break
        locs.append(loc)
    return Problem(severity, code, message, count, locs, split)


def _rows(n: int, word: str = "row") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _split_problems(
    name: str, examples: list[Example], norm: list[str], n_tokens: list[int], max_len: int, keep: int | None
) -> list[Problem]:
    out: list[Problem] = []
    if not examples:
        return [_problem("error", "no-examples", name, f"{name}: the file has no examples", [], 0, keep)]

    empty = [ex for ex, t in zip(examples, norm) if not t]
    if empty:
        msg = f"{name}: {_rows(len(empty))} with an empty text (blank, or only white space / invisible characters)"
        out.append(_problem("error", "empty-text", name, msg, (ex.source for ex in empty), len(empty), keep))

    labeled = sum(1 for ex in examples if ex.label)
    if labeled and labeled < len(examples):
        missing = [ex for ex in examples if not ex.label]
        msg = f"{name}: {_rows(len(missing))} without a label, though the other rows have one"
        out.append(_problem("error", "missing-label", name, msg, (ex.source for ex in missing), len(missing), keep))
    elif not labeled and name == "train":
        msg = "train: no row has a label; a classifier cannot be trained on it"
        out.append(_problem("error", "unlabeled", name, msg, [examples[0].source], len(examples), keep))
    elif not labeled:
        msg = f"{name}: no labels; it can be predicted on, not evaluated"
        out.append(_problem("info", "unlabeled", name, msg, [examples[0].source], len(examples), keep))

    out += _duplicates(name, examples, norm, keep)
    out += _characters(name, examples, keep)

    long_rows = [(ex, n) for ex, n in zip(examples, n_tokens) if n > max_len]
    if long_rows:
        share = len(long_rows) / len(examples)
        msg = (
            f"{name}: {len(long_rows)} of {len(examples)} texts ({share:.1%}) have more than max_len = {max_len} tokens; "
            "the rest of each is cut off"
        )
        locs = (f"{ex.source} ({n} tokens)" for ex, n in long_rows)
        out.append(_problem("warning", "truncated", name, msg, locs, len(long_rows), keep))
    return out


def _duplicates(name: str, examples: list[Example], norm: list[str], keep: int | None) -> list[Problem]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(norm):
        if key:  # empty texts are reported once, as empty, not as thousands of duplicates
            groups[key].append(i)
    repeats: list[str] = []
    conflicts: list[str] = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        first = examples[rows[0]]
        if len({examples[i].label for i in rows}) > 1:
            others = ", ".join(f"{_same_file(examples[i], first)} [{examples[i].label}]" for i in rows[1:4])
            more = f", +{len(rows) - 4} more" if len(rows) > 4 else ""
            conflicts.append(f"{first.source} [{first.label}], also {others}{more}")
        else:
            repeats += (f"{examples[i].source} (same text as {_same_file(first, examples[i])})" for i in rows[1:])
    out = []
    if conflicts:
        msg = f"{name}: {_rows(len(conflicts), 'text')} with different labels on different rows"
        out.append(_problem("error", "conflicting-labels", name, msg, conflicts, len(conflicts), keep))
    if repeats:
        effect = "they weigh double in training" if name == "train" else "they count twice in the scores"
        verb = "repeats" if len(repeats) == 1 else "repeat"
        msg = f"{name}: {_rows(len(repeats))} {verb} an earlier text with the same label ({effect})"
        out.append(_problem("warning", "duplicate", name, msg, repeats, len(repeats), keep))
    return out


def _same_file(ex: Example, other: Example) -> str:
    """Where `ex` is, shortened to "line N" when it is in the same file as `other`."""
    return f"line {ex.line}" if ex.file and ex.line and not ex.copy and ex.file == other.file else ex.source


def _char_name(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'control character')}"


def _characters(name: str, examples: list[Example], keep: int | None) -> list[Problem]:
    invisible: list[str] = []
    invisible_chars: Counter[str] = Counter()
    alnum: list[str] = []
    punct = 0
    for ex in examples:
        found = _INVISIBLE_RE.findall(ex.text)
        if found:
            invisible_chars.update(found)
            invisible.append(f"{ex.source} ({_char_name(found[0])})")
        m = _FULLWIDTH_ALNUM_RE.search(ex.text)
        if m:
            alnum.append(f"{ex.source} ({m.group()})")
        if _FULLWIDTH_PUNCT_RE.search(ex.text):
            punct += 1
    out = []
    if invisible:
        top = ", ".join(f"{_char_name(ch)} ×{n}" for ch, n in invisible_chars.most_common(3))
        msg = f"{name}: {_rows(len(invisible), 'text')} with invisible or control characters ({top}); normalization deletes them"
        out.append(_problem("warning", "invisible", name, msg, invisible, len(invisible), keep))
    if alnum:
        msg = f"{name}: {_rows(len(alnum), 'text')} with full-width letters or digits (Ａ, １); normalization folds them to ASCII"
        out.append(_problem("warning", "fullwidth", name, msg, alnum, len(alnum), keep))
    if punct:
        msg = f"{name}: {punct} of {len(examples)} texts use full-width punctuation (，！？ or U+3000); normalization folds it to ASCII"
        out.append(_problem("info", "fullwidth-punct", name, msg, [], punct, keep))
    return out


def _label_problems(splits: dict[str, Sequence[Example]], stats: dict[str, SplitStats], keep: int | None) -> list[Problem]:
    out: list[Problem] = []
    train = stats["train"]
    known = set(train.labels)
    if len(train.labels) == 1:
        msg = f"train: every row has the label {next(iter(known))!r}; a classifier needs at least two"
        out.append(_problem("error", "single-label", "train", msg, [], train.n, keep))
    elif len(train.labels) > 1:
        (top, n_top), n_low = next(iter(train.labels.items())), list(train.labels.values())[-1]
        if n_top / n_low > IMBALANCE_RATIO:
            rare = [label for label, n in train.labels.items() if n_top / n > IMBALANCE_RATIO]
            listed = ", ".join(f"{label!r} ({train.labels[label]})" for label in rare[-10:])
            msg = (
                f"train: labels are imbalanced: {top!r} has {n_top} rows, {listed} less than 1/{IMBALANCE_RATIO:.0f} of that; "
                f"consider training.class_weights = \"balanced\" and metric macro_f1"
            )
            out.append(_problem("warning", "imbalance", "train", msg, [], len(rare), keep))
    if not known:
        return out
    for name in ("dev", "test"):
        if name not in splits:
            continue
        unseen = {label: n for label, n in stats[name].labels.items() if label not in known}
        if not unseen:
            continue
        listed = ", ".join(f"{label!r} ({_rows(n)})" for label, n in list(unseen.items())[:10])
        more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        msg = f"{name}: {_rows(len(unseen), 'label')} never seen in train: {listed}{more}; no model can predict them"
        rows = (f"{ex.source} [{ex.label}]" for ex in splits[name] if ex.label in unseen)
        out.append(_problem("error", "unseen-label", name, msg, rows, sum(unseen.values()), keep))
    return out


def _overlap(
    base: list[Example],
    base_keys: list[str],
    base_name: str,
    other: list[Example],
    other_keys: list[str],
    name: str,
    keep: int | None,
    severity: str,
) -> list[Problem]:
    """Rows of `other` whose text is also in `base`, each with the first `base` row that has it."""
    first: dict[str, Example] = {}
    for ex, key in zip(base, base_keys):
        if key:
            first.setdefault(key, ex)
    shared: list[str] = []
    relabeled = 0
    for ex, key in zip(other, other_keys):
        hit = first.get(key) if key else None
        if hit is None:
            continue
        note = ""
        if ex.label != hit.label:
            relabeled += 1
            note = f", labels {ex.label!r} vs {hit.label!r}"
        shared.append(f"{ex.source} (= {hit.source}{note})")
    if not shared:
        return []
    differ = f" ({relabeled} with a different label)" if relabeled else ""
    if severity == "error":
        msg = f"{name}: {_rows(len(shared), 'text')} also in {base_name}{differ}; {name} scores will be inflated"
        code = "leakage"
    else:
        msg = f"{name}: {_rows(len(shared), 'text')} also in {base_name}{differ}"
        code = "overlap"
    return [_problem(severity, code, name, msg, shared, len(shared), keep)]
