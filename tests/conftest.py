"""Shared fixtures: a tiny, separable Chinese corpus written in the formats users have."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(bundle: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`zhcls serve BUNDLE ARGS` in a subprocess on a free loopback port, once /healthz answers; yields
    (base URL, process). On exit the server gets SIGTERM and its output is kept in `proc.output`."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "zhcls", "--quiet", "serve", str(bundle), "--port", str(port), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy in 60 s"
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        proc.output = proc.communicate(timeout=30)[0].decode()
