"""Scale-out: sharded teacher labelling, [training] device/precision, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import numpy as np
import pytest

from zhcls.distill import label_texts
from zhcls.distill.shards import label_shard, parse_shard, shard_bounds
from zhcls.errors import ConfigError


class FakeTeacher:
    """Probabilities that depend on each text and on the batch it came in (its size), so a shard that cut a
    batch differently from one process would show; raises after `fail_after` calls (a kill)."""

    identity, paths, labels = "fake-teacher", ["fake"], ("a", "b", "c")

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls, self.seen, self.fail_after = 0, [], fail_after

    def predict(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.seen += list(texts)
        x = np.array([[len(t) % 5, 0.1 * len(texts), -1.0 / (1 + i)] for i, t in enumerate(texts)], dtype=np.float32)
        p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        return p, x


TEXTS = [f"第{i}条文本" + "长" * (i % 7) for i in range(23)]


# -- sharded teacher labelling ----------------------------------------------------------------------
def test_shards_are_whole_batches_covering_every_text():
    for n_texts, batch, shards in [(23, 4, 3), (8, 4, 2), (3, 4, 2), (100, 7, 5)]:
        bounds = [shard_bounds(n_texts, batch, k, shards) for k in range(shards)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n_texts
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(start % batch == 0 for start, _ in bounds)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_sharded_labelling_merges_into_the_single_process_file(tmp_path):
    single = label_texts(FakeTeacher(), TEXTS, out=tmp_path / "one.jsonl", use_cache=False, batch_size=4)
    out = tmp_path / "soft.jsonl"
    cache = tmp_path / "cache"
    first = label_shard(FakeTeacher(), TEXTS, (2, 3), out=out, cache_dir=cache, batch_size=4)
    assert first.merged is None and first.pending == [0, 1] and not out.exists()
    label_shard(FakeTeacher(), TEXTS, (0, 3), out=out, cache_dir=cache, batch_size=4)
    last = label_shard(FakeTeacher(), TEXTS, (1, 3), out=out, cache_dir=cache, batch_size=4)
    assert last.merged is not None and last.pending == []
    assert out.read_bytes() == (tmp_path / "one.jsonl").read_bytes()  # same order, same values, same header
    np.testing.assert_array_equal(last.merged.probs, single.probs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "one.jsonl", "soft.jsonl"]  # shard files removed
    # the merge filled the cache a single process fills: every later run, sharded or not, is served from it
    teacher = FakeTeacher()
    again = label_shard(teacher, TEXTS, (0, 3), out=tmp_path / "again.jsonl", cache_dir=cache, batch_size=4)
    hit = label_texts(teacher, TEXTS, cache_dir=cache, batch_size=4)
    assert again.merged.cached and hit.cached and teacher.calls == 0
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


def test_a_killed_shard_resumes_on_its_own(tmp_path):
    out = tmp_path / "soft.jsonl"
    with pytest.raises(KeyboardInterrupt):
        label_shard(FakeTeacher(fail_after=1), TEXTS, (1, 2), out=out, use_cache=False, batch_size=4)
    assert (tmp_path / "soft.jsonl.shard-1-of-2.partial").is_file()
    label_shard(FakeTeacher(), TEXTS, (0, 2), out=out, use_cache=False, batch_size=4)
    teacher = FakeTeacher()
    done = label_shard(teacher, TEXTS, (1, 2), out=out, use_cache=False, batch_size=4)
    start, _ = shard_bounds(len(TEXTS), 4, 1, 2)
    assert done.resumed_rows == 4 and teacher.seen == TEXTS[start + 4 :]
    one = label_texts(FakeTeacher(), TEXTS, out=tmp_path / "one.jsonl", use_cache=False, batch_size=4)
    assert out.read_bytes() == one.path.read_bytes()
    # a rerun of a shard after the merge finds the merged file and labels nothing
    teacher = FakeTeacher()
    assert label_shard(teacher, TEXTS, (0, 2), out=out, use_cache=False, batch_size=4).merged is not None and teacher.calls == 0
