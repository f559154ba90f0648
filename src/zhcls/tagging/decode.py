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

    def outside_bounds(self, o: int) -> "OutsideBounds":
        """What best_path needs of the CRF for outside tag `o`, computed once per CRF."""
        cache = self.__dict__.setdefault("_outside", {})  # frozen: the cache is the one mutable thing, and private
        if o not in cache:
            cache[o] = OutsideBounds.of(self, o)
        return cache[o]


@dataclass(frozen=True)
class OutsideBounds:
    """Per-tag constants of best_path's bound for outside tag `o` (float64; -inf at o, so a max over tags is a
    max over the non-O ones): `into` and `first` score entering tag k after an O or at position 0, `within`
    entering k from the best non-O tag; `oo` and `start_o` are A[o, o] and start[o]; `leave` and `leave_end`
    bound leaving a run to an O or at the end: A[o, o] - max_k A[k, o] and end[o] - max_k end[k]."""

    into: np.ndarray
    first: np.ndarray
    within: np.ndarray
    oo: float
    start_o: float
    leave: float
    leave_end: float

    @classmethod
    def of(cls, crf: "Crf", o: int) -> "OutsideBounds":
        non = np.arange(len(crf.start)) != o
        t = np.asarray(crf.transitions, dtype=np.float64)
        start, end = np.asarray(crf.start, dtype=np.float64), np.asarray(crf.end, dtype=np.float64)
        only = lambda row: np.where(non, row, -np.inf)  # noqa: E731
        return cls(
            into=only(t[o]), first=only(start), within=only(t[non].max(axis=0)), oo=float(t[o, o]), start_o=float(start[o]),
            leave=float(t[o, o] - t[non, o].max()), leave_end=float(end[o] - end[non].max()),
        )


def viterbi(emissions: np.ndarray, crf: Crf) -> np.ndarray:
    """The highest-scoring tag path of one sequence, emissions [T, K] -> tag ids [T]: argmax over paths y of
    start[y0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_{T-1}]. Ties go to the
    lower tag id, as in pytorch-crf's decode."""
    return _viterbi(emissions, crf.start, crf.end, crf.transitions)


def _viterbi(emissions: np.ndarray, start: np.ndarray, end: np.ndarray, transitions: np.ndarray) -> np.ndarray:
    """On the serving path numpy's per-call cost, not arithmetic, is the time (K is about 7), so the loop over
    positions makes two numpy calls and nothing else: the step scores are added in one call before it, and
    the back-pointers are recomputed from the kept forward scores in one call after it. 111 us against 134
    for the textbook four-call loop (434 against 540 for 200 characters), 7 tags, best of 30 rounds. A tree
    of max-plus matrix products (log2(T) calls on [T/2, K, K, K] arrays) took 148 us."""
    t_len, k = emissions.shape
    forward = np.empty((t_len, k), dtype=np.result_type(emissions, transitions))
    forward[0] = start + emissions[0]
    step = transitions.T[None] + emissions[1:, :, None]  # [T-1, next, previous]
    buf = np.empty((k, k), dtype=forward.dtype)
    for t in range(1, t_len):
        np.add(step[t - 1], forward[t - 1], out=buf)
        buf.max(axis=1, out=forward[t])
    back = (forward[:-1, None, :] + transitions.T[None]).argmax(axis=2).tolist()  # [T-1, next] -> previous
    tag = int((forward[-1] + end).argmax())
    path = [tag] * t_len
    for t in range(t_len - 2, -1, -1):
        tag = back[t][tag]
        path[t] = tag
    return np.asarray(path, dtype=np.int64)


MARGIN = 1e-3  # a run must lose by more than float32 rounding of a path score could hide


def best_path(emissions: np.ndarray, crf: Crf, outside: int | None) -> np.ndarray:
    """viterbi's path, found faster when most characters are clearly outside any entity (tag `outside`, O).

    A position t is O on every best path when setting any run of non-O tags that covers it to O raises the
    score. Setting a run [a, b] (an O or the text's edge on each side) to O gains
        sum_{s=a..b} (e_s(O) - e_s(y_s)) + entry(y_a) + sum_{s=a+1..b} (A[O, O] - A[y_{s-1}, y_s]) + exit(y_b),
    with entry(k) = A[O, O] - A[O, k] (start[O] - start[k] at position 0) and exit(k) = A[O, O] - A[k, O]
    (end[O] - end[k] at the end). Bounding each position's part over the tags it could hold gives
    F_a + sum_{s=a+1..b} G_s + X_b, with G_s = e_s(O) + A[O, O] - max_k (e_s(k) + max_i A[i, k]) (i, k not O),
    F_a the same with the entry's transition in place of max_i A[i, k], and X_b the worst exit. With P the
    prefix sums of G, the smallest bound over the runs covering t is min_{a<=t} (F_a - P_a) +
    min_{b>=t} (P_b + X_b): two running minima, a few vectorized calls for the whole text. Keeping each
    tag's own transitions in the bound (an entity's first character is entered from O, its others from its
    B- or I- tag) proves far more positions than one global worst transition. Those positions split the
    text, and Viterbi runs only on the pieces between them, each entered from an O (or the start) and left
    to an O (or the end). The path is viterbi's (ties aside). On MSRA 50-character test texts with
    benchmarks/joint.py's tagger_h32e32g16 run, 79% of the positions are proven O (69% with one global worst
    transition), and decoding takes 0.80x the time, the whole predict_spans call 0.95x; every one of the
    5,434 test texts at full length decodes to viterbi's path (benchmarks/results/decode_ab.md)."""
    t_len, k = emissions.shape
    if outside is None or k == 1 or t_len == 1:
        return viterbi(emissions, crf) if k > 1 else np.zeros(t_len, dtype=np.int64)
    bound = crf.outside_bounds(outside)
    e = emissions.astype(np.float64)
    stay = e[:, outside] + bound.oo
    g = stay - (e + bound.within).max(axis=1)
    f = stay - (e + bound.into).max(axis=1)
    f[0] = e[0, outside] + bound.start_o - (e[0] + bound.first).max()
    prefix = np.cumsum(g)
    leave = prefix + bound.leave
    leave[-1] += bound.leave_end - bound.leave
    gain = np.minimum.accumulate(f - prefix) + np.minimum.accumulate(leave[::-1])[::-1]
    free = np.flatnonzero(gain <= MARGIN).tolist()
    path = np.full(t_len, outside, dtype=np.int64)
    trans = crf.transitions
    while free:
        a = b = free.pop(0)
        while free and free[0] == b + 1:
            b = free.pop(0)
        start = crf.start if a == 0 else trans[outside]
        end = crf.end if b == t_len - 1 else trans[:, outside]
        path[a : b + 1] = _viterbi(emissions[a : b + 1], start, end, trans)
    return path


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
    parts, inside, outside = _tag_parts(tuple(tags))
    path = best_path(emissions, crf, outside) if crf is not None else emissions.argmax(axis=1)
    at = np.flatnonzero(inside[path])  # the positions of entity tags (most are O)
    if not len(at):
        return [], []
    entities, runs = path_spans(at.tolist(), path[at].tolist(), parts)
    chosen = log_softmax(emissions[at])[np.arange(len(at)), path[at]].tolist()
    return entities, [math.exp(sum(chosen[a:b]) / (b - a)) for a, b in runs]


@lru_cache(maxsize=64)
def _tag_parts(tags: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], np.ndarray, int | None]:
    """(prefix, type) of each tag, which tags are not O, and O's id (None without one)."""
    parts = tuple(split_tag(t) for t in tags)
    inside = np.asarray([prefix != OUTSIDE for prefix, _ in parts])
    return parts, inside, int(np.flatnonzero(~inside)[0]) if not inside.all() else None


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
