"""Opt-in checks on the real benchmark data (`pytest -m slow`); skipped when ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zhcls.config import config_from_dict
from zhcls.training.run import train

DATA = Path(os.environ.get("ZHCLS_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (DATA / "fewclue").is_dir(), reason="benchmark data not found")]


@pytest.mark.parametrize("model, floor", [("tfidf.v1", 0.70), ("fasttext.v1", 0.65), ("textcnn.v1", 0.65)])
def test_eprstmt_accuracy_floor(model, floor, tmp_path):
    base = DATA / "fewclue" / "eprstmt"
    cfg = config_from_dict({
        "data": {"train": str(base / "train_few_all.json"), "dev": str(base / "dev_few_all.json"), "test": str(base / "test_public.json")},
        "model": {"name": model},
        "training": {"epochs": 20, "batch_size": 16, "metric": "accuracy", "patience": 5},
    })
    result = train(cfg, tmp_path / "run")
    assert result.metrics["test"]["accuracy"] >= floor
