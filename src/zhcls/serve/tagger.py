"""The serving half of tagger.v1 and joint.v1 bundles: per-character features, the ONNX graph (emissions
and class logits), and numpy decoding (Viterbi for a CRF head). No torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..artifact import read_json
from ..tagging.decode import Crf, decode
from ..tagging.features import CharFeatures, pad_features
from ..tagging.spans import Entity

BATCH = 32


class TaggerRuntime:
    def __init__(self, path: Path, tokenizer: dict[str, Any], session: Any) -> None:
        self.features = CharFeatures.from_json(tokenizer)
        spec = read_json(path / "tagger.json")
        self.tags: tuple[str, ...] = tuple(spec["tags"])
        self.crf: Crf | None = None
        if spec["head"] == "crf":
            from safetensors.numpy import load_file

            arrays = load_file(str(path / "crf.safetensors"))
            self.crf = Crf(arrays["start"], arrays["end"], arrays["transitions"])
        self.session = session
        self.inputs = {i.name for i in session.get_inputs()}  # a graph without n-gram features has no `grams`
        self.outputs = [o.name for o in session.get_outputs()]
        self.classifies = "logits" in self.outputs

    def run(self, texts: Sequence[str], n_classes: int) -> tuple[np.ndarray, list[np.ndarray], list[bool]]:
        """(class logits [n, C] (C = 0 without a class head), emissions [T_i, K] per text, truncated per text)."""
        max_len = self.features.max_len
        if len(texts) == 1:  # the latency path: no sorting, padding or scatter
            ids, grams = self.features.encode(texts[0])
            feed = {"ids": ids[None], "grams": grams[None], "lengths": np.array([len(ids)], dtype=np.int64)}
            out = self.session.run(self.outputs, {k: v for k, v in feed.items() if k in self.inputs})
            logits = out[1] if self.classifies else np.zeros((1, n_classes), dtype=np.float32)
            return logits, [out[0][0]], [len(texts[0]) > max_len]
        encoded = self.features.encode_batch(texts)
        logits = np.zeros((len(texts), n_classes), dtype=np.float32)
        emissions: list[np.ndarray] = [np.empty(0)] * len(texts)
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            ids, grams, lengths = pad_features([encoded[i] for i in idx])
            feed = {k: v for k, v in (("ids", ids), ("grams", grams), ("lengths", lengths)) if k in self.inputs}
            out = self.session.run(self.outputs, feed)
            if self.classifies:
                logits[idx] = out[1]
            for k, i in enumerate(idx):
                emissions[i] = out[0][k, : int(lengths[k])]
        return logits, emissions, [len(t) > max_len for t in texts]

    def spans(self, texts: Sequence[str], emissions: Sequence[np.ndarray]) -> list[list[tuple[Entity, float]]]:
        return [list(zip(*decode(em, self.tags, self.crf, len(text)))) for text, em in zip(texts, emissions)]
