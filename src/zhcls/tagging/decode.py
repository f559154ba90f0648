"""From per-character scores to entities, in numpy (the predictor has no torch): Viterbi for a CRF head,
argmax for a softmax head, and a confidence per entity."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .spans import OUTSIDE, Entity, split_tag


@dataclass(frozen=True)
class Crf:
    """A linear-chain CRF's scores, as pytorch-crf names them: transitions[i, j] scores tag i followed by j."""

    start: np.ndarray  # [K]
    end: np.ndarray  # [K]
    transitions: np.ndarray  # [K, K]


def viterbi(emissions: np.ndarray, crf: Crf) -> np.ndarray:
    """The highest-scoring tag path of one sequence, emissions [T, K] -> tag ids [T]: argmax over paths y of
    start[y0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_{T-1}]. Ties go to the
    lower tag id, as in pytorch-crf's decode.

    On the serving path numpy's per-call cost, not arithmetic, is the time (K is about 7), so the loop over
    positions makes two numpy calls and nothing else: the step scores are added in one call before it, and
    the back-pointers are recomputed from the kept forward scores in one call after it. 111 us against 134
    for the textbook four-call loop (434 against 540 for 200 characters), 7 tags, best of 30 rounds. A tree
    of max-plus matrix products (log2(T) calls on [T/2, K, K, K] arrays) took 148 us."""
    t_len, k = emissions.shape
    forward = np.empty((t_len, k), dtype=np.result_type(emissions, crf.transitions))
    forward[0] = crf.start + emissions[0]
    step = crf.transitions.T[None] + emissions[1:, :, None]  # [T-1, next, previous]
    buf = np.empty((k, k), dtype=forward.dtype)
    for t in range(1, t_len):
        np.add(step[t - 1], forward[t - 1], out=buf)
        buf.max(axis=1, out=forward[t])
    back = (forward[:-1, None, :] + crf.transitions.T[None]).argmax(axis=2).tolist()  # [T-1, next] -> previous
    tag = int((forward[-1] + crf.end).argmax())
    path = [tag] * t_len
    for t in range(t_len - 2, -1, -1):
        tag = back[t][tag]
        path[t] = tag
    return np.asarray(path, dtype=np.int64)


def tag_marginals(emissions: np.ndarray, crf: Crf | None, temperature: float = 1.0) -> np.ndarray:
    """[T, K]: each position's probability of each tag, every score divided by `temperature`. For a CRF head
    the marginals over all tag paths (forward-backward in log space, what a tagging teacher knows beyond its
    best path); for a softmax head the per-character softmax. Each row sums to 1. Distillation's soft
    targets (training/spans.py); not on the serving path, so clarity over numpy call counts."""
    e = np.asarray(emissions, dtype=np.float64) / temperature
    if crf is None:
        return np.exp(log_softmax(e))
    start, end, trans = (np.asarray(a, dtype=np.float64) / temperature for a in (crf.start, crf.end, crf.transitions))
    t_len, k = e.shape
    forward, backward = np.empty((t_len, k)), np.empty((t_len, k))
    forward[0] = start + e[0]
    for t in range(1, t_len):
        forward[t] = _logsumexp(forward[t - 1][:, None] + trans, axis=0) + e[t]
    backward[-1] = end
    for t in range(t_len - 2, -1, -1):
        backward[t] = _logsumexp(trans + (e[t + 1] + backward[t + 1])[None, :], axis=1)
    log_z = _logsumexp(forward[-1] + end, axis=0)
    return np.exp(forward + backward - log_z)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.exp(x - top).sum(axis=axis))


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def decode(emissions: np.ndarray, tags: Sequence[str], crf: Crf | None, n_chars: int) -> tuple[list[Entity], list[float]]:
    """Entities of a text of `n_chars` characters from its emissions [T, K] (T = n_chars, or fewer when the
    model read only the first max_len), and each one's score: the geometric mean over its characters of the
    per-character (softmax) probability of the tag the decoder chose. For a CRF head this is a confidence of
    the emissions, not the CRF's marginal probability."""
    emissions = emissions[:n_chars]  # an empty text is read as one space: no position of it is a character
    if not len(emissions):
        return [], []
    path = viterbi(emissions, crf) if crf is not None else emissions.argmax(axis=1)
    parts, inside = _tag_parts(tuple(tags))
    at = np.flatnonzero(inside[path])  # the positions of entity tags (most are O)
    if not len(at):
        return [], []
    entities, runs = path_spans(at.tolist(), path[at].tolist(), parts)
    chosen = log_softmax(emissions[at])[np.arange(len(at)), path[at]].tolist()
    return entities, [math.exp(sum(chosen[a:b]) / (b - a)) for a, b in runs]


@lru_cache(maxsize=64)
def _tag_parts(tags: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], np.ndarray]:
    """(prefix, type) of each tag, and which tags are not O."""
    parts = tuple(split_tag(t) for t in tags)
    return parts, np.asarray([prefix != OUTSIDE for prefix, _ in parts])


def path_spans(positions: Sequence[int], tag_ids: Sequence[int], parts: Sequence[tuple[str, str]]) -> tuple[list[Entity], list[tuple[int, int]]]:
    """tags_to_spans(strict=False) of a predicted path given only its entity tags: `positions` (ascending) and
    their tag ids, all other positions O. Also, per entity, its [a, b) range of `positions`."""
    entities: list[Entity] = []
    runs: list[tuple[int, int]] = []
    start, kind, first, last = -1, "", 0, -2  # the open entity: its first position (-1: none), type, index in positions, last position

    for j, (i, tag) in enumerate(zip(positions, tag_ids)):
        if start >= 0 and i != last + 1:  # an O in between ended it
            entities.append(Entity(start, last + 1, kind))
            runs.append((first, j))
            start = -1
        prefix, t = parts[tag]
        if not (prefix in ("I", "E") and start >= 0 and t == kind):  # B-, S-, or an I-/E- that continues nothing: a new entity
            if start >= 0:
                entities.append(Entity(start, i, kind))
                runs.append((first, j))
            start, kind, first = i, t, j
        last = i
        if prefix in ("E", "S"):
            entities.append(Entity(start, i + 1, kind))
            runs.append((first, j + 1))
            start = -1
    if start >= 0:
        entities.append(Entity(start, last + 1, kind))
        runs.append((first, len(positions)))
    return entities, runs
