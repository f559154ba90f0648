"""zhcls: Chinese text classification from data file to served model."""

__version__ = "0.1.0"

from .config import RunConfig, load_config  # noqa: E402
from .data.example import Example, LabelSet  # noqa: E402
from .data.readers import read_examples  # noqa: E402
from .errors import ZhclsError  # noqa: E402
from .models.base import Classifier, build_model, load_model  # noqa: E402
from .training.run import train  # noqa: E402

__all__ = [
    "Classifier", "Example", "LabelSet", "RunConfig", "ZhclsError",
    "build_model", "load_config", "load_model", "read_examples", "train", "__version__",
]
