"""Malformed input, thrown at the readers, the config and the CLI: every case is an exit-2 error that
names where the problem is, never a traceback, never data read wrong. Bounded: a few seconds in all.

MALFORMED is a committed corpus (file name, bytes, what the error must mention); the property tests
mutate valid files and configs with a seeded generator and accept only two outcomes: the records a
reference reading gives, or a ZhclsError.
"""

from __future__ import annotations

import json
import random
import string

import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl
from zhcls.config import config_from_dict
from zhcls.data.readers import ReadOptions, read_examples
from zhcls.errors import ZhclsError

J = lambda obj: json.dumps(obj, ensure_ascii=False)  # noqa: E731

# (file name, content, a string the error message must contain besides the file name; None: the file name is enough)
MALFORMED: list[tuple[str, bytes, str | None]] = [
    # JSON lines
    ("trunc.json", b'{"text": "a", "label": "x"}\n{"text": "b", "lab', ":2"),
    ("notobj.json", b'{"text": "a", "label": "x"}\n[1, 2]\n', ":2"),
    ("str.json", b'{"text": "a", "label": "x"}\n"just a string"\n', ":2"),
    ("num.json", b'{"text": "a", "label": "x"}\n42\n', ":2"),
    ("nolabelfield.json", b'{"text": "a", "label": "x"}\n{"text": "b"}\n', ":2"),
    ("notextfield.json", b'{"label": "x", "id": 1}\n', ":1"),
    ("listlabel.json", J({"text": "a", "label": ["P"]}).encode(), "label"),
    ("dictlabel.json", J({"text": "a", "label": {"name": "P"}}).encode(), "label"),
    ("boollabel.json", b'{"text": "a", "label": true}\n', "label"),
    ("falselabel.json", b'{"text": "a", "label": false}\n', "label"),
    ("nanlabel.json", b'{"text": "a", "label": NaN}\n', "label"),
    ("inflabel.json", b'{"text": "a", "label": Infinity}\n', "label"),
    ("neginflabel.json", b'{"text": "a", "label": -Infinity}\n', "label"),
    ("listtext.json", J({"text": ["a", "b"], "label": "x"}).encode(), "text"),
    ("numtext.json", b'{"text": 12, "label": "x"}\n', "text"),
    ("booltext.json", b'{"text": true, "label": "x"}\n', "text"),
    ("dicttext.json", b'{"text": {"a": 1}, "label": "x"}\n', "text"),
    ("deep.json", b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b', "label": "x"}\n', "nested"),
    ("deepobj.json", b'{"text": "a", "label": "x", "m": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}\n", "nested"),
    ("gbk.json", '{"text": "你好", "label": "好"}\n'.encode("gbk"), "UTF-8"),
    ("latin1.json", '{"text": "café", "label": "x"}\n'.encode("latin-1"), "UTF-8"),
    ("utf16.json", '{"text": "a", "label": "x"}\n'.encode("utf-16"), "UTF-8"),
    ("nul.json", b'{"text": "a", "label": "x"}\n\x00\x00\x00\n', ":2"),
    ("trailing.json", b'{"text": "a", "label": "x"} garbage\n', ":1"),
    ("twoobjs.json", b'{"text": "a", "label": "x"}{"text": "b", "label": "y"}\n', ":1"),
    ("emptylabel.json", b'{"text": "a", "label": "x"}\n{"text": "b", "label": ""}\n', ":2"),
    ("nulllabel.json", b'{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n', ":2"),
    ("emptytext.json", b'{"text": "a", "label": "x"}\n{"text": "", "label": "y"}\n', ":2"),
    ("nulltext.json", b'{"text": "a", "label": "x"}\n{"text": null, "label": "y"}\n', ":2"),
    ("zwsp.json", '{"text": "a", "label": "x"}\n{"text": "\u200b\u200b", "label": "y"}\n'.encode(), ":2"),
    ("onlyblank.json", b"\n\n   \n", "no examples"),
    ("empty.json", b"", "no examples"),
    # CSV
    ("quote.csv", b'text,label\n"\xe4\xb8\x8d\xe9\x94\x99,1\n\xe8\xbf\x98\xe8\xa1\x8c,0\n\xe5\xa5\xbd",1\n\xe5\xbe\x88\xe5\xa5\xbd,0\n', "quote"),
    ("openquote.csv", b'text,label\na,1\n"b,0\nc,1\n', ":3"),
    ("badquote.csv", b'text,label\n"b,0\nc,1\n"d",1\n', ":2"),
    ("ragged.csv", b"text,label\na,1\nb,0,extra\n", ":3"),
    ("short.csv", b"text,label,id\na,1,1\nb\n", ":3"),
    ("noheadertext.csv", b"foo,bar\na,1\n", "header"),
    ("gbk.csv", "text,label\n你好,好\n".encode("gbk"), "UTF-8"),
    ("emptylabel.csv", b"text,label\na,1\nb,\n", ":3"),
    ("emptytext.csv", b"text,label\na,1\n,0\n", ":3"),
    ("headeronly.csv", b"text,label\n", "no examples"),
    # TSV
    ("cols.tsv", b"a\t1\nb\t0\nc\td\t1\n", ":3"),
    ("fewer.tsv", b"id\ta\t1\nid\tb\n", ":2"),
    ("notab.tsv", b"a\t1\nno tab here\n", ":2"),
    ("gbk.tsv", "你好\t好\n".encode("gbk"), "UTF-8"),
    ("emptylabel.tsv", b"a\t1\nb\t\n", ":2"),
    ("emptytext.tsv", b"a\t1\n\t0\n", ":2"),
    # fastText
    ("multi.txt", b"__label__a one\n__label__a __label__b two\n", ":2"),
    ("nolabel.txt", b"__label__a one\ntwo without a label\n", ":2"),
    ("emptylabel.txt", b"__label__a one\n__label__ two\n", ":2"),
    ("onlylabel.txt", b"__label__a one\n__label__b\n", ":2"),
    ("gbk.txt", "__label__a 你好\n".encode("gbk"), "UTF-8"),
    # unlabeled where labels are needed
    ("plain.txt", "只有文本\n没有标签\n".encode(), "label"),
    ("unlabeled.json", b'{"text": "a"}\n{"text": "b"}\n', "label"),
    # one class only
    ("oneclass.json", b"".join(J({"text": f"t{i}", "label": "x"}).encode() + b"\n" for i in range(6)), "two labels"),
]

# bad configs: (extra TOML for [training] or a whole section, what the error must name)
BAD_CONFIGS: list[tuple[str, str]] = [
    ("[training]\nlr = 1e999\n", "training.lr"),
    ("[training]\nlr = inf\n", "training.lr"),
    ("[training]\nlr = nan\n", "training.lr"),
    ("[training]\nlr = -1.0\n", "training.lr"),
    ("[training]\nlr = 100.0\n", "training.lr"),
    ("[training]\nlr = \"fast\"\n", "training.lr"),
    ("[training]\nepochs = 0\n", "training.epochs"),
    ("[training]\nbatch_size = -3\n", "training.batch_size"),
    ("[training]\nweight_decay = inf\n", "training.weight_decay"),
    ("[training]\nmax_grad_norm = nan\n", "training.max_grad_norm"),
    ("[training]\nthreads = 1e99\n", "training.threads"),
    ("[training]\nmetric = \"loss\"\n", "training.metric"),
    ("[training]\nepocs = 3\n", "epocs"),
    ("[model]\nname = \"fasttext.v1\"\nbuckets = 1e11\n", "model.buckets"),
    ("[model]\nname = \"textcnn.v1\"\nmax_vocab = 10000000000\n", "model.max_vocab"),
    ("[model]\nname = \"textcnn.v1\"\ndropout = nan\n", "model.dropout"),
    ("[model]\nname = \"textcnn.v1\"\nembed_dim = -1\n", "model.embed_dim"),
    ("[model]\nname = \"textcnn.v9\"\n", "textcnn.v9"),
    ("[data]\nformat = \"yaml\"\n", "data.format"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_click_command():
    """zhcls.cli.main rebuilds typer's click command on every call (70 ms, most of a failing command's
    time); build it once here so the hundreds of calls below take seconds. main's exit-code mapping,
    which these tests are about, is unchanged."""
    import typer.main

    real = typer.main.get_command
    cache: dict[int, object] = {}

    def cached(app):
        if id(app) not in cache:
            cache[id(app)] = real(app)
        return cache[id(app)]

    typer.main.get_command = cached
    yield
    typer.main.get_command = real


def _located(err: str, name: str, extra: str | None) -> bool:
    return name in err and (extra is None or extra in err)


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory):
    from zhcls import load_config, train

    root = tmp_path_factory.mktemp("fuzz")
    train_file = write_jsonl(root / "train.json", make_corpus(6, seed=1))
    return train(load_config(write_config(root / "c.toml", train_file, None, model="tfidf.v1")), root / "run").run_dir


def test_the_corpus_is_large_enough():
    assert len(MALFORMED) + len(BAD_CONFIGS) >= 60


@pytest.mark.parametrize("name, content, must", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_data_is_an_exit_2_error_that_names_the_place(name, content, must, tmp_path, capsys, tfidf_run):
    path = tmp_path / name
    path.write_bytes(content)
    other = write_jsonl(tmp_path / "ok.json", make_corpus(2))
    # train: the data as the train split (a data error stops it before any training)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ntrain = "{path}"\n\n[model]\nname = "tfidf.v1"\n', encoding="utf-8")
    code, out, err = run_cli(["train", cfg, "-o", tmp_path / "run"], capsys)
    assert code == 2 and "Traceback" not in err and "error: unexpected" not in err and _located(err, name, must), err
    assert not (tmp_path / "run" / "config.toml").exists()
    # evaluate: the data as the labeled test file (one class is fine to evaluate on)
    code, out, err = run_cli(["evaluate", tfidf_run, path], capsys)
    assert code == (0 if must == "two labels" else 2) and "Traceback" not in err and (code == 0 or _located(err, name, must)), err
    # data check: as a dev split beside good train data (2: unreadable; 1: data errors; 0: an unlabeled dev split)
    code, out, err = run_cli(["data", "check", other, "--dev", path], capsys)
    assert code in (0, 1, 2) and "Traceback" not in err and "error: unexpected" not in err, err
    if code == 2:
        assert name in err


UNREADABLE = [c for c in MALFORMED if c[2] not in ("label", "two labels", "no examples")]


@pytest.mark.parametrize("name, content, must", UNREADABLE, ids=[c[0] for c in UNREADABLE])
def test_malformed_input_to_predict_and_augment(name, content, must, tmp_path, capsys, tfidf_run):
    path = tmp_path / name
    path.write_bytes(content)
    try:
        read_examples(path)
        unreadable = False
    except ZhclsError:
        unreadable = True
    # predict reads texts only and augment copies rows as they are: an empty label or text is not their
    # concern, but a file the reader refuses must be refused by both
    for args in (["predict", tfidf_run, path], ["augment", path, tmp_path / f"aug-{name}", "-n", "1"]):
        code, out, err = run_cli(args, capsys)
        assert code in (0, 2) and "Traceback" not in err and "error: unexpected" not in err, err
        assert code == 2 if unreadable else True, (args[0], err)
        if code == 2:
            assert name in err


@pytest.mark.parametrize("toml, field", BAD_CONFIGS, ids=[f for _, f in BAD_CONFIGS])
def test_bad_configs_name_the_field(toml, field, tmp_path, capsys):
    train_file = write_jsonl(tmp_path / "train.json", make_corpus(3))
    base = f'[data]\ntrain = "{train_file}"\n'
    if not toml.startswith("[data]"):
        base += "\n" + toml
    else:
        base = toml.replace("[data]\n", f'[data]\ntrain = "{train_file}"\n')
    cfg = tmp_path / "c.toml"
    cfg.write_text(base, encoding="utf-8")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run"], capsys)
    assert code == 2 and field in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


# -- property tests: seeded mutations, two outcomes only ----------------------------------------------
def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[i:i] = rng.choice([b'"', b"\t", b",", b"\n", b"{", b"}", b"[", b"]", b"\\", b"__label__", b"\r", b"\xe2\x80\xa8", b"\xff", b"NaN"])
        elif op == 2 and b:
            del b[i : i + rng.randint(1, 8)]
        elif op == 3:
            b = b[: rng.randrange(len(b) + 1)]
        elif op == 4:
            b[i:i] = "".join(rng.choice(string.printable + "中文标签") for _ in range(rng.randint(1, 6))).encode()
        else:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[j : j + rng.randint(1, 20)]
    return bytes(b)


def _valid_files() -> dict[str, bytes]:
    corpus = make_corpus(3)
    rows = list(zip(corpus.texts, corpus.labels))
    return {
        "d.json": "".join(J({"sentence": t, "label": l}) + "\n" for t, l in rows).encode(),
        "d.csv": ("text,label\n" + "".join(f'"{t}",{l}\n' for t, l in rows)).encode(),
        "d.tsv": "".join(f"{t}\t{l}\n" for t, l in rows).encode(),
        "d.txt": "".join(f"__label__{l} {t}\n" for t, l in rows).encode(),
    }


@pytest.mark.parametrize("seed", range(4))
def test_mutated_files_read_or_fail_with_a_data_error(seed, tmp_path):
    rng = random.Random(seed)
    outcomes = {"read": 0, "refused": 0}
    for name, data in _valid_files().items():
        for k in range(60):
            path = tmp_path / f"{k}-{name}"
            path.write_bytes(_mutate(rng, data))
            try:
                examples = read_examples(path)
            except ZhclsError as exc:
                assert path.name in exc.message, exc.message
                outcomes["refused"] += 1
                continue
            outcomes["read"] += 1
            for e in examples:  # what was read is text and label strings, each with its file and line
                assert isinstance(e.text, str) and (e.label is None or isinstance(e.label, str)) and e.source.startswith(str(path))
    assert outcomes["read"] and outcomes["refused"]


@pytest.mark.parametrize("seed", range(3))
def test_random_config_values_validate_or_fail_with_a_config_error(seed):
    rng = random.Random(seed)
    values = [0, -1, 1, 2**40, 1e11, -1e-9, 1e999, float("nan"), "", "x", "1e-3", True, [], [1, "a"], {}, {"a": 1}, None, 0.5, 3]
    keys = {"training": ["lr", "epochs", "batch_size", "weight_decay", "max_grad_norm", "eval_every", "patience", "metric", "threads", "seed"],
            "model": ["embed_dim", "dropout", "max_len", "buckets", "max_vocab", "min_freq", "ngrams", "num_filters", "kernel_sizes"],
            "data": ["format", "text_field", "tsv_order", "train"]}
    for _ in range(150):
        raw: dict = {"model": {"name": rng.choice(["textcnn.v1", "fasttext.v1", "bigru.v1", "tfidf.v1"])}}
        for _ in range(rng.randint(1, 3)):
            section = rng.choice(sorted(keys))
            value = rng.choice(values)
            if value is None:
                continue
            raw.setdefault(section, {})[rng.choice(keys[section])] = value
        try:
            config_from_dict(raw)
        except ZhclsError:
            pass  # refused with a message; anything else fails the test


def test_reading_is_faithful_where_it_succeeds(tmp_path):
    """Property: a file the reader accepts gives back exactly the records a reference writer put in."""
    rng = random.Random(7)
    alphabet = "中文，。！？abc ,\"'" + "\u2028\u00a0"
    for k in range(40):
        rows = [("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))).strip() or "空", rng.choice(["好", "坏", "1", "0"])) for _ in range(rng.randint(2, 8))]
        path = tmp_path / f"{k}.json"
        path.write_text("".join(J({"text": t, "label": l}) + "\n" for t, l in rows), encoding="utf-8")
        assert [(e.text, e.label) for e in read_examples(path)] == rows
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
        path = tmp_path / f"{k}.csv"
        path.write_text(buf.getvalue(), encoding="utf-8")
        assert [(e.text, e.label) for e in read_examples(path, ReadOptions(format="csv"))] == rows
