"""Imports every built-in component module once, so registration is explicit and complete."""

from .augment import lexical as _lexical  # noqa: F401
from .augment import noise as _noise  # noqa: F401
from .models import bigru as _bigru  # noqa: F401
from .models import ensemble as _ensemble  # noqa: F401
from .models import fasttext as _fasttext  # noqa: F401
from .models import tagger as _tagger  # noqa: F401
from .models import textcnn as _textcnn  # noqa: F401
from .models import tfidf as _tfidf  # noqa: F401
from .models import transformer as _transformer  # noqa: F401
from .text import tokenizers as _tokenizers  # noqa: F401
