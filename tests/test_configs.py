"""Every shipped example config is valid (checked without reading the data, which tests never need)."""

from pathlib import Path

import pytest

from zhcls.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_validates(path):
    cfg = load_config(path)
    assert cfg.data.train and "${ZHCLS_DATA_DIR}" in cfg.data.train


def test_there_are_example_configs():
    assert len(CONFIGS) >= 4
