"""Readers: formats detected, fields mapped, every problem located by file and line."""

from __future__ import annotations

import json

import pytest

from zhcls.config import DataConfig
from zhcls.data.readers import ReadOptions, read_examples, read_split
from zhcls.errors import DataError


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_fewclue_jsonl_field_detection(tmp_path):
    tnews = _write(tmp_path / "tnews.json", json.dumps({"label": 102, "label_desc": "news_entertainment", "sentence": "标题", "keywords": ""}, ensure_ascii=False) + "\n")
    iflytek = _write(tmp_path / "iflytek.json", json.dumps({"label": "11", "label_des": "休闲益智", "sentence": "应用"}, ensure_ascii=False) + "\n")
    csldcp = _write(tmp_path / "csldcp.json", json.dumps({"content": "摘要", "label": "力学", "id": 1}, ensure_ascii=False) + "\n")
    assert read_examples(tnews)[0].label == "news_entertainment"
    assert read_examples(iflytek)[0].label == "休闲益智"
    assert read_examples(csldcp)[0].text == "摘要"
    # explicit mapping overrides detection; integer labels become strings
    assert read_examples(tnews, ReadOptions(label_field="label"))[0].label == "102"


def test_unlabeled_jsonl(tmp_path):
    path = _write(tmp_path / "unlabeled.json", '{"id": 1, "sentence": "没有标签"}\n{"id": 2, "sentence": "还是没有"}\n')
    examples = read_examples(path)
    assert [e.label for e in examples] == [None, None]
    assert (examples[1].file, examples[1].line) == (str(path), 2)  # fields, not a string to parse
    assert examples[1].source == f"{path}:2"  # for messages


def test_label_missing_midway_names_line(tmp_path):
    path = _write(tmp_path / "t.json", '{"sentence": "a", "label": "x"}\n\n{"sentence": "b"}\n')
    with pytest.raises(DataError, match=r"t\.json:3"):
        read_examples(path)


@pytest.mark.parametrize("order", ["text_label", "label_text"])
def test_tsv_order_detected(tmp_path, order):
    rows = [("这家店的东西质量很好", "pos"), ("太差了不会再来", "neg"), ("物流很快包装完好", "pos"), ("客服态度恶劣", "neg")]
    lines = [f"{t}\t{l}" if order == "text_label" else f"{l}\t{t}" for t, l in rows]
    examples = read_examples(_write(tmp_path / "d.txt", "\n".join(lines) + "\n"))
    assert [(e.text, e.label) for e in examples] == rows


def test_tsv_without_tab_names_line(tmp_path):
    with pytest.raises(DataError, match=r"d\.tsv:2.*no TAB"):
        read_examples(_write(tmp_path / "d.tsv", "好\tpos\n没有制表符\n"))


def test_csv_quoted_fields_and_line_numbers(tmp_path):
    path = _write(tmp_path / "d.csv", 'cat,label,review\n书籍,1,"好书，推荐"\n手机,0,"多行\n评论"\n水果,1,甜\n')
    examples = read_examples(path, ReadOptions(label_field="cat"))
    assert [e.text for e in examples] == ["好书，推荐", "多行\n评论", "甜"]
    assert examples[2].source == f"{path}:5"  # the physical line, after a quoted line break


def test_csv_ragged_row(tmp_path):
    with pytest.raises(DataError, match=r"d\.csv:3: 2 columns"):
        read_examples(_write(tmp_path / "d.csv", "review,label,x\n好,1,a\n坏,0\n"))


def test_bom_is_ignored(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b"\xef\xbb\xbf" + '{"sentence": "好", "label": "a"}\n'.encode())
    assert read_examples(path)[0].text == "好"


def test_non_utf8_names_line(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes("好\ta\n".encode() + "坏\tb\n".encode("gbk"))
    with pytest.raises(DataError, match=r"d\.tsv:2: not valid UTF-8") as exc:
        read_examples(path)
    assert "iconv" in exc.value.hint


def test_paddle_directory(tmp_path):
    for split in ("train", "dev"):
        _write(tmp_path / f"{split}.txt", "好评\tpos\n差评\tneg\n")
    data = DataConfig(train=str(tmp_path))
    assert len(read_split(data, "train")) == 2 and len(read_split(data, "dev")) == 2
    assert read_split(data, "test") is None


def test_env_var_in_paths(tmp_path, monkeypatch):
    _write(tmp_path / "t.json", '{"sentence": "好", "label": "a"}\n')
    monkeypatch.setenv("ZHCLS_DATA_DIR", str(tmp_path))
    assert read_split(DataConfig(train="${ZHCLS_DATA_DIR}/t.json"), "train")[0].label == "a"


def test_csv_multiline_record_reported_at_its_first_line(tmp_path):
    path = _write(tmp_path / "d.csv", 'review,label\n"第一行\n第二行",1\n好,0,extra\n')
    examples = read_examples(_write(tmp_path / "ok.csv", 'review,label\n"第一行\n第二行",1\n好,0\n'))
    assert [e.line for e in examples] == [2, 4]
    with pytest.raises(DataError, match=r"d\.csv:4: 3 columns"):
        read_examples(path)


def test_invisible_only_text_is_empty(tmp_path):
    from zhcls.data.readers import require_labeled

    examples = read_examples(_write(tmp_path / "t.json", '{"sentence": "好", "label": "a"}\n{"sentence": "\\u200b\\u200b", "label": "b"}\n'))
    with pytest.raises(DataError, match=r"t\.json:2: empty text"):
        require_labeled(examples, "train data")


def test_unicode_line_separators_inside_records(tmp_path):
    # FewCLUE iflytek has raw U+2028 inside texts; only \n ends a record.
    path = _write(tmp_path / "d.json", '{"sentence": "第一\u2028第二\x85第三", "label": "a"}\r\n{"sentence": "好", "label": "b"}\n')
    examples = read_examples(path)
    assert [e.text for e in examples] == ["第一\u2028第二\x85第三", "好"]
    assert examples[1].line == 2 and examples[1].source.endswith(":2")
    tsv = read_examples(_write(tmp_path / "d.tsv", "一\u2028二\tx\n三\ty\n"))
    assert [(e.text, e.label) for e in tsv] == [("一\u2028二", "x"), ("三", "y")]


def test_record_spans_number_records_as_the_reader_does(tmp_path):
    from zhcls.data.records import RecordFile, dump_json_like, format_csv_row, parse_csv_record, split_ending

    path = tmp_path / "a.csv"
    path.write_bytes('\ufefftext,label\r\n"two\nlines",pos\r\nshort,neg'.encode("utf-8"))
    data = RecordFile.read(path, "csv")
    assert data.bom == "\ufeff" and data.line_ending() == "\r\n"
    assert [e.line for e in read_examples(path)] == sorted(data.spans) == [2, 4]
    assert data.record(2) == '"two\nlines",pos\r\n' and parse_csv_record(data.record(4)) == ["short", "neg"]
    assert format_csv_row(["a,b", "c"], "") == '"a,b",c' and split_ending("x\r\n") == ("x", "\r\n")
    assert dump_json_like({"t": "好"}, '{"t": "x"}') == '{"t": "好"}'
    assert dump_json_like({"t": "好"}, '{"t":"\\u4e00"}') == '{"t":"\\u597d"}'
