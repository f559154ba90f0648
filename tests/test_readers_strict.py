"""Readers never change the data silently: a stray quote, an extra column, a label that is a list or a
boolean, a text that is not a string, or JSON nested too deeply is an error naming file, line and field."""

from __future__ import annotations

import pytest

from conftest import run_cli
from zhcls.data.readers import ReadOptions, read_examples
from zhcls.errors import DataError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_unbalanced_quote_that_merges_records_is_refused(tmp_path):
    rows = ["text,label"] + [f"第{i}条很好,{i % 2}" for i in range(20)]
    rows[5] = '"第4条很好,0'  # the quote is closed only by the one on row 8: rows 5-8 would become one text
    rows[8] = '第7条很好",1'
    path = _write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"t\.csv:6: a quoted field runs over lines 6-9.*unbalanced quote"):
        read_examples(path)


def test_csv_quote_left_open_names_the_line(tmp_path):
    path = _write(tmp_path / "t.csv", 'text,label\n很好,1\n"不错,1\n还行,0\n')
    with pytest.raises(DataError, match=r"t\.csv:3: unreadable CSV record"):
        read_examples(path)
    path = _write(tmp_path / "u.csv", 'text,label\n"不错,1\n还行,0\n"很好",1\n')
    with pytest.raises(DataError, match=r"u\.csv:2"):
        read_examples(path)


def test_csv_real_multiline_texts_still_read(tmp_path):
    path = _write(tmp_path / "t.csv", 'text,label\n"第一行\n我们去公园, 然后回家\n第二行",好\n"a, b",坏\n很好,好\n')
    assert [(e.text, e.label) for e in read_examples(path)] == [("第一行\n我们去公园, 然后回家\n第二行", "好"), ("a, b", "坏"), ("很好", "好")]


def test_data_check_reports_the_merged_csv(tmp_path, capsys):
    path = _write(tmp_path / "t.csv", 'text,label\n"不错,1\n还行,0\n好",1\n很好,0\n')
    code, _, err = run_cli(["data", "check", path], capsys)
    assert code == 2 and "t.csv:2" in err and "unbalanced quote" in err and "Traceback" not in err


def test_tsv_line_with_another_column_count_is_refused(tmp_path):
    path = _write(tmp_path / "t.tsv", "很好\t1\n不好\t0\n还\t行\t1\n")
    with pytest.raises(DataError, match=r"t\.tsv:3: 3 columns, line 1 has 2"):
        read_examples(path)


@pytest.mark.parametrize(
    "label, kind",
    [('["Positive"]', "a list"), ('{"a": 1}', "an object"), ("true", "a boolean"), ("NaN", "a non-finite number"), ("Infinity", "a non-finite number")],
)
def test_jsonl_labels_that_are_not_strings_or_numbers(tmp_path, label, kind):
    path = _write(tmp_path / "t.json", '{"text": "很好", "label": "a"}\n{"text": "不错", "label": ' + label + "}\n")
    with pytest.raises(DataError, match=rf"t\.json:2: field 'label' holds {kind}"):
        read_examples(path)


def test_numeric_labels_still_read(tmp_path):
    path = _write(tmp_path / "t.json", '{"text": "很好", "label": 1}\n{"text": "不错", "label": 0.0}\n')
    assert [e.label for e in read_examples(path)] == ["1", "0"]


@pytest.mark.parametrize("text", ['["还行", "不错"]', "123", "true", '{"a": "b"}'])
def test_jsonl_text_that_is_not_a_string(tmp_path, text):
    path = _write(tmp_path / "t.json", '{"sentence": ' + text + ', "label": "a"}\n')
    with pytest.raises(DataError, match=r"t\.json:1: field 'sentence' holds .*a text must be a string"):
        read_examples(path)


def test_deeply_nested_json_is_a_data_error(tmp_path, capsys):
    path = _write(tmp_path / "t.json", '{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": "a"}\n')
    with pytest.raises(DataError, match=r"t\.json:1: JSON nested too deeply"):
        read_examples(path)
    code, _, err = run_cli(["data", "check", path], capsys)
    assert code == 2 and "nested too deeply" in err


def test_fasttext_format_detected_and_read(tmp_path):
    path = _write(tmp_path / "train.txt", "__label__pos 物流很快 包装完好\n\n__label__neg 太慢了\n")
    examples = read_examples(path)
    assert [(e.text, e.label, e.source) for e in examples] == [("物流很快 包装完好", "pos", f"{path}:1"), ("太慢了", "neg", f"{path}:3")]
    assert read_examples(path, ReadOptions(format="fasttext"))[1].label == "neg"


@pytest.mark.parametrize(
    "text, message",
    [
        ("__label__pos 好\n不好\n", r"train\.txt:2: no __label__ label"),
        ("__label__pos __label__neg 好\n", r"train\.txt:1: more than one __label__ label"),
        ("__label__ 好\n", r"train\.txt:1: empty label"),
    ],
)
def test_fasttext_problems_name_the_line(tmp_path, text, message):
    path = _write(tmp_path / "train.txt", text)
    with pytest.raises(DataError, match=message):
        read_examples(path)


def test_fasttext_format_in_a_config(tmp_path, capsys):
    from zhcls.config import config_from_dict

    path = _write(tmp_path / "train.txt", "".join(f"__label__{'ab'[i % 2]} 文本{i}\n" for i in range(10)))
    assert config_from_dict({"data": {"train": str(path), "format": "fasttext"}}).data.format == "fasttext"


def test_unknown_format_is_a_data_error(tmp_path):
    path = _write(tmp_path / "t.json", '{"text": "a"}\n')
    with pytest.raises(DataError, match="unknown data format 'yaml'"):
        read_examples(path, ReadOptions(format="yaml"))
