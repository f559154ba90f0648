"""zhcls: Chinese text classification from data file to served model.

Names are imported on first use, so `import zhcls.serve` in a serving install (no torch, no
scikit-learn) loads nothing it does not need.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "RunConfig": "zhcls.config",
    "load_config": "zhcls.config",
    "Example": "zhcls.data.example",
    "LabelSet": "zhcls.data.example",
    "read_examples": "zhcls.data.readers",
    "ZhclsError": "zhcls.errors",
    "Classifier": "zhcls.models.base",
    "build_model": "zhcls.models.base",
    "load_model": "zhcls.models.base",
    "train": "zhcls.training.run",
    "Predictor": "zhcls.serve.predictor",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zhcls' has no attribute {name!r}")
