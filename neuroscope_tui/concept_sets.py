"""Concept sets: labelled prompts read from files the user names (or the shipped examples).

A concept is two labelled prompt sets. They come from
- a text file per label: one example per line, the label is the file name without its suffix
  (`positive.txt` -> "positive"), or given as `LABEL=PATH`;
- one CSV file with a `text,label` header, or one JSONL file of {"text": ..., "label": ...};
- a folder: every `.txt` file in it is one label;
- `example:NAME`: a folder of `neuroscope_tui/concepts_data/` (`example:sentiment_en`).
Empty lines and lines starting with `#` in text files are skipped.

Files come from users, so every way a file can be wrong is one ConceptError sentence: not
UTF-8, not a plain file, too large, an empty set, a malformed CSV/JSONL row, one label only,
the same text under two labels. No torch here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neuroscope_tui.errors import ConceptError
from neuroscope_tui.prompt_sets import decode_text, read_file_bytes, text_lines
from neuroscope_tui.safetensors_file import shown

MAX_FILE_BYTES = 16 * 1024 * 1024  # a concept set is prompts, not a corpus
MAX_EXAMPLES = 20_000
MAX_TEXT_CHARS = 20_000
EXAMPLES_DIR = Path(__file__).parent / "concepts_data"
EXAMPLE_PREFIX = "example:"


@dataclass(frozen=True)
class ConceptSet:
    """Labelled examples: `texts[i]` has label `labels[i]`; `sources` are the files read."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def classes(self) -> tuple[str, ...]:
        """The labels in the order they first appear (the first is the concept's side)."""
        return tuple(dict.fromkeys(self.labels))

    def __len__(self) -> int:
        return len(self.texts)

    def count(self, label: str) -> int:
        return sum(1 for lab in self.labels if lab == label)

    def label_ids(self, classes: Sequence[str]) -> list[int]:
        """Each example's index in `classes`; ConceptError for a label not among them."""
        index = {c: i for i, c in enumerate(classes)}
        unknown = [lab for lab in self.classes if lab not in index]
        if unknown:
            raise ConceptError(
                f"the label {shown(unknown[0])} is not one of the concept's labels "
                f"({', '.join(shown(c) for c in classes)}); name the files after those labels"
            )
        return [index[lab] for lab in self.labels]

    def digest(self) -> str:
        """sha256 of the examples and labels (what a fitted concept records of its sets)."""
        blob = json.dumps([list(self.texts), list(self.labels)], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def example_names() -> list[str]:
    """The shipped example sets (`example:NAME`)."""
    return sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.is_dir())


def read_sets(specs: Sequence[str], *, what: str = "--set") -> ConceptSet:
    """The examples of every file, folder or `example:NAME` in `specs`, merged.

    Raises ConceptError when anything is unreadable or when fewer than two labels result.
    """
    texts: list[str] = []
    labels: list[str] = []
    sources: list[str] = []
    for spec in specs:
        for text, label, source in _read_spec(spec):
            texts.append(text)
            labels.append(label)
            if source not in sources:
                sources.append(source)
    if not texts:
        raise ConceptError(f"no examples were given with {what}; name at least two files")
    if len(texts) > MAX_EXAMPLES:
        raise ConceptError(f"{what} gives {len(texts)} examples; use at most {MAX_EXAMPLES}")
    result = ConceptSet(tuple(texts), tuple(labels), tuple(sources))
    classes = result.classes
    if len(classes) < 2:
        raise ConceptError(
            f"{what} has only the label {shown(classes[0])}; a concept needs two labels "
            "(two files, or a CSV/JSONL file with two values in its label column)"
        )
    if len(classes) > 2:
        raise ConceptError(
            f"{what} has {len(classes)} labels ({', '.join(shown(c) for c in classes[:4])}"
            f"{', ...' if len(classes) > 4 else ''}); a concept has exactly two"
        )
    _refuse_shared_texts(result)
    return result


def _refuse_shared_texts(sets: ConceptSet) -> None:
    seen: dict[str, str] = {}
    for text, label in zip(sets.texts, sets.labels, strict=True):
        other = seen.setdefault(text, label)
        if other != label:
            raise ConceptError(
                f"the example {shown(text)} is labelled both {shown(other)} and {shown(label)}; "
                "give each example one label"
            )


def _read_spec(spec: str) -> list[tuple[str, str, str]]:
    if spec.startswith(EXAMPLE_PREFIX):
        name = spec[len(EXAMPLE_PREFIX) :]
        folder = EXAMPLES_DIR / name
        if name not in example_names():
            raise ConceptError(
                f"there is no example set {shown(name)}; choose one of: "
                f"{', '.join(example_names())}"
            )
        return _read_folder(folder)
    label = None
    if "=" in spec and not Path(spec).exists():
        label, spec = spec.split("=", 1)
        if not label.strip():
            raise ConceptError(f"the label before '=' in {shown(label + '=' + spec)} is empty")
    path = Path(spec).expanduser()
    if path.is_dir():
        if label is not None:
            raise ConceptError(f"{path} is a folder; LABEL=PATH takes one file")
        return _read_folder(path)
    raw = _read_bytes(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _table_rows(_csv_rows(path, raw), path, label)
    if suffix in (".jsonl", ".ndjson"):
        return _table_rows(_jsonl_rows(path, raw), path, label)
    text = _decode(path, raw)
    return [(t, label or path.stem, str(path)) for t in _lines(text)]


def _read_folder(folder: Path) -> list[tuple[str, str, str]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt")
    if not files:
        raise ConceptError(f"the folder {folder} holds no .txt files (one file per label)")
    rows: list[tuple[str, str, str]] = []
    for f in files:
        rows += [(t, f.stem, str(f)) for t in _lines(_decode(f, _read_bytes(f)))]
    return rows


def _read_bytes(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES; ConceptError otherwise."""
    return read_file_bytes(
        path, ConceptError, what="a text, CSV or JSONL file", max_bytes=MAX_FILE_BYTES
    )


def _decode(path: Path, raw: bytes) -> str:
    return decode_text(path, raw, ConceptError)


def _lines(text: str) -> list[str]:
    return text_lines(text, MAX_TEXT_CHARS)


def _csv_rows(path: Path, raw: bytes) -> list[tuple[int, object, object]]:
    text = _decode(path, raw)
    try:
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "text" not in fields or "label" not in fields:
            raise ConceptError(f"{path} needs a header line with the columns text and label")
        reader.fieldnames = fields
        return [(i + 2, row.get("text"), row.get("label")) for i, row in enumerate(reader)]
    except csv.Error as err:
        raise ConceptError(f"{path} is not valid CSV ({shown(str(err))})") from None


def _jsonl_rows(path: Path, raw: bytes) -> list[tuple[int, object, object]]:
    rows = []
    for i, line in enumerate(_decode(path, raw).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            raise ConceptError(f"line {i} of {path} is not JSON") from None
        if not isinstance(item, dict):
            raise ConceptError(f"line {i} of {path} is not an object with text and label")
        rows.append((i, item.get("text"), item.get("label")))
    return rows


def _table_rows(
    rows: list[tuple[int, object, object]], path: Path, label: str | None
) -> list[tuple[str, str, str]]:
    out = []
    for line, text, lab in rows:
        if not isinstance(text, str) or not isinstance(lab, (str, int)) or isinstance(lab, bool):
            raise ConceptError(f"line {line} of {path} lacks a text or a label")
        text, lab = text.strip(), str(lab).strip()
        if not text:
            continue
        if not lab:
            raise ConceptError(f"line {line} of {path} has an empty label")
        out.append((text[:MAX_TEXT_CHARS], label or lab, str(path)))
    return out
