"""Shared fixtures: a tiny, separable Chinese corpus written in the formats users have."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

TOPICS = {
    "体育": ["足球", "篮球", "比赛", "冠军", "球员", "进球"],
    "财经": ["股票", "基金", "银行", "利率", "投资", "市场"],
    "科技": ["手机", "芯片", "电脑", "软件", "网络", "算法"],
}
FILLER = ["今天", "消息", "最新", "关于", "我们", "看看", "新闻", "报道"]


@dataclass
class Corpus:
    texts: list[str]
    labels: list[str]


def make_corpus(n_per_label: int = 12, seed: int = 0) -> Corpus:
    import random

    rng = random.Random(seed)
    texts, labels = [], []
    for label, words in TOPICS.items():
        for i in range(n_per_label):
            parts = rng.sample(words, 2) + rng.sample(FILLER, 2)
            rng.shuffle(parts)
            texts.append("".join(parts) + f"第{i}条")
            labels.append(label)
    return Corpus(texts, labels)


@pytest.fixture(scope="session")
def tiny_corpus() -> Corpus:
    return make_corpus()


def write_jsonl(path: Path, corpus: Corpus, text_field: str = "sentence", label_field: str = "label_desc") -> Path:
    lines = [json.dumps({text_field: t, label_field: l, "id": i}, ensure_ascii=False) for i, (t, l) in enumerate(zip(corpus.texts, corpus.labels))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(path: Path, train: Path, dev: Path | None, model: str = "textcnn.v1", extra: str = "") -> Path:
    dev_line = f'dev = "{dev}"\n' if dev else ""
    path.write_text(
        f'[data]\ntrain = "{train}"\n{dev_line}\n[model]\nname = "{model}"\n\n[training]\nepochs = 3\nbatch_size = 8\n{extra}',
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def tiny_files(tmp_path: Path) -> dict[str, Path]:
    train = write_jsonl(tmp_path / "train.json", make_corpus(12, seed=1))
    dev = write_jsonl(tmp_path / "dev.json", make_corpus(4, seed=2))
    test = write_jsonl(tmp_path / "test.json", make_corpus(4, seed=3))
    return {"train": train, "dev": dev, "test": test}


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run `zhcls ARGS` in-process; return (exit code, stdout, stderr)."""
    from zhcls.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err
