"""zhcls: Chinese text classification from data file to served model."""

__version__ = "0.1.0"

from .data.example import Example, LabelSet  # noqa: E402
from .errors import ZhclsError  # noqa: E402
from .models.base import load_model  # noqa: E402

__all__ = ["Example", "LabelSet", "ZhclsError", "load_model", "__version__"]
