"""Concept sets from files: text per label, CSV, JSONL, folders, the shipped examples, and
every hostile file as one ConceptError sentence."""

from __future__ import annotations

import os

import pytest

from neuroscope_tui import concept_sets
from neuroscope_tui.concept_sets import example_names, read_sets
from neuroscope_tui.errors import ConceptError


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_text_file_per_label_skips_comments_and_empty_lines(tmp_path):
    a = write(tmp_path / "good.txt", "# a comment\n\nnice day\n  great film  \n")
    b = write(tmp_path / "bad.txt", "awful day\r\nterrible film\n\n")
    s = read_sets([a, b])
    assert s.texts == ("nice day", "great film", "awful day", "terrible film")
    assert s.labels == ("good", "good", "bad", "bad")
    assert s.classes == ("good", "bad")
    assert s.label_ids(("bad", "good")) == [1, 1, 0, 0]
    assert len(s.digest()) == 64 and s.digest() == read_sets([a, b]).digest()


def test_label_equals_path_csv_and_jsonl(tmp_path):
    a = write(tmp_path / "x.txt", "one\n")
    b = write(tmp_path / "y.txt", "two\n")
    assert read_sets([f"pos={a}", f"neg={b}"]).labels == ("pos", "neg")
    c = write(tmp_path / "s.csv", 'Text,Label\n"hello, world",pos\nbye,neg\n,neg\n')
    s = read_sets([c])
    assert s.texts == ("hello, world", "bye") and s.labels == ("pos", "neg")
    j = write(tmp_path / "s.jsonl", '{"text": "yes", "label": 1}\n\n{"text": "no", "label": 0}\n')
    assert read_sets([j]).labels == ("1", "0")


def test_shipped_examples_are_marked_and_balanced():
    assert {"sentiment_en", "sentiment_fr", "requests"} <= set(example_names())
    en = read_sets(["example:sentiment_en"])
    fr = read_sets(["example:sentiment_fr"])
    assert set(en.classes) == set(fr.classes) == {"positive", "negative"}
    assert en.count("positive") == en.count("negative") == 40
    assert fr.count("positive") == fr.count("negative") == 40
    req = read_sets(["example:requests"])
    assert req.count("harmful") == req.count("harmless") == 30
    for folder in ("sentiment_en", "sentiment_fr", "requests"):
        for f in (concept_sets.EXAMPLES_DIR / folder).glob("*.txt"):
            assert "Example concept set" in f.read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"a.txt": "only one label\n"}, "only the label"),
        ({"a.txt": "# nothing\n\n", "b.txt": "\n"}, "no examples"),
        ({"a.txt": b"caf\xe9\n", "b.txt": "x\n"}, "not UTF-8"),
        ({"a.txt": b"bin\x00ary\n", "b.txt": "x\n"}, "NUL"),
        ({"a.txt": "same\n", "b.txt": "same\n"}, "labelled both"),
        ({"t.csv": "sentence,kind\nx,y\n"}, "header line"),
        ({"t.csv": "text,label\nx,\n"}, "empty label"),
        ({"t.jsonl": "{not json\n"}, "not JSON"),
        ({"t.jsonl": '["a", "b"]\n'}, "not an object"),
        ({"t.jsonl": '{"text": "a"}\n'}, "lacks a text or a label"),
        ({"t.csv": "text,label\na,x\nb,y\nc,z\n"}, "exactly two"),
    ],
)
def test_hostile_sets_are_one_sentence(tmp_path, files, words):
    paths = [write(tmp_path / name, body) for name, body in files.items()]
    with pytest.raises(ConceptError, match=words) as err:
        read_sets(paths)
    assert "\n" not in str(err.value)


def test_missing_folder_fifo_huge_and_unknown_example(tmp_path, monkeypatch):
    with pytest.raises(ConceptError, match="no file"):
        read_sets([str(tmp_path / "missing.txt")])
    with pytest.raises(ConceptError, match=r"no \.txt files"):
        read_sets([str(tmp_path)])
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(ConceptError, match="not a plain file"):
        read_sets([str(fifo)])
    monkeypatch.setattr(concept_sets, "MAX_FILE_BYTES", 100)
    big = write(tmp_path / "big.txt", "x" * 200)
    with pytest.raises(ConceptError, match="at most"):
        read_sets([big])
    with pytest.raises(ConceptError, match="no example set"):
        read_sets(["example:nope"])


def test_transfer_labels_must_be_the_concepts(tmp_path):
    s = read_sets([write(tmp_path / "yes.txt", "a\n"), write(tmp_path / "no.txt", "b\n")])
    with pytest.raises(ConceptError, match="not one of the concept's labels"):
        s.label_ids(("positive", "negative"))
