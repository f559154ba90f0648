"""Imports every built-in component module once, so registration is explicit and complete."""

from .models import bigru as _bigru  # noqa: F401
from .models import fasttext as _fasttext  # noqa: F401
from .models import textcnn as _textcnn  # noqa: F401
from .models import tfidf as _tfidf  # noqa: F401
from .text import tokenizers as _tokenizers  # noqa: F401
