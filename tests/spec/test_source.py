"""Reading spec paths (read_sources) and locating JSON paths in them (Sources.locate)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from backfill_ctl.errors import Diagnostic, PathPart, UsageError
from backfill_ctl.spec.source import SourceFile, Sources, read_sources
from tests.builders import write


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spec directory with YAML at several depths, hidden folders and other files."""
    write(tmp_path / "specs/b.yaml", "b: 1\n")
    write(tmp_path / "specs/a.yml", "a: 1\n")
    write(tmp_path / "specs/nodes/z/deep.yaml", "deep: 1\n")
    write(tmp_path / "specs/nodes/c.yaml", "c: 1\n")
    write(tmp_path / "specs/.git/config.yaml", "git: 1\n")
    write(tmp_path / "specs/.github/workflows/ci.yml", "ci: 1\n")
    write(tmp_path / "specs/README.md", "# not yaml\n")
    write(tmp_path / "specs/data.json", "{}\n")
    write(tmp_path / "specs/backup.yaml.bak", "x: 1\n")
    (tmp_path / "specs/folder.yaml").mkdir()  # a directory named like a spec file
    monkeypatch.chdir(tmp_path)
    return tmp_path


def names(paths: list[str], stdin: io.StringIO | None = None) -> list[str]:
    return [f.name for f in read_sources(paths, stdin)]


# -- read_sources --------------------------------------------------------------------


def test_directory_is_searched_recursively_in_sorted_order(repo: Path) -> None:
    assert names(["specs"]) == [
        "specs/a.yml",
        "specs/b.yaml",
        "specs/nodes/c.yaml",
        "specs/nodes/z/deep.yaml",
    ]


def test_upper_case_suffixes_are_spec_files_too(repo: Path) -> None:
    write(repo / "specs/nodes/LEGACY.YAML", "legacy: 1\n")
    assert "specs/nodes/LEGACY.YAML" in names(["specs"])


def test_files_keep_their_text(repo: Path) -> None:
    files = read_sources(["specs/b.yaml", "specs/a.yml"])
    assert files == [SourceFile("specs/b.yaml", "b: 1\n"), SourceFile("specs/a.yml", "a: 1\n")]


def test_an_explicit_file_is_read_whatever_its_suffix(repo: Path) -> None:
    assert names(["specs/README.md"]) == ["specs/README.md"]


def test_a_hidden_directory_given_explicitly_is_read(repo: Path) -> None:
    # hidden folders are skipped only while searching below the path given
    assert names(["specs/.github"]) == ["specs/.github/workflows/ci.yml"]


def test_a_path_given_twice_is_read_once(repo: Path) -> None:
    assert names(["specs/b.yaml", "specs", "./specs/b.yaml", "specs/nodes"]) == [
        "specs/b.yaml",
        "specs/a.yml",
        "specs/nodes/c.yaml",
        "specs/nodes/z/deep.yaml",
    ]


def test_dash_reads_stdin(repo: Path) -> None:
    files = read_sources(["specs/a.yml", "-"], io.StringIO("kind: Node\n"))
    assert files == [SourceFile("specs/a.yml", "a: 1\n"), SourceFile("<stdin>", "kind: Node\n")]


def test_dash_twice_reads_stdin_once() -> None:
    # a second read would give "" and, under the same name, replace the text that
    # diagnostics are located in
    files = read_sources(["-", "-"], io.StringIO("kind: Node\n"))
    assert files == [SourceFile("<stdin>", "kind: Node\n")]


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_non_utf8_stdin_is_a_usage_error(errors: str) -> None:
    # a real stdin decodes with surrogateescape under a C locale, strictly under UTF-8
    stdin = io.TextIOWrapper(io.BytesIO(b"kind: \xff\n"), encoding="utf-8", errors=errors)
    with pytest.raises(UsageError) as exc:
        read_sources(["-"], stdin)
    assert exc.value.message.startswith("<stdin>: not UTF-8 text")
    assert exc.value.hint == "send UTF-8 text"
    assert exc.value.exit_code == 2


def test_no_paths_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as exc:
        read_sources([])
    assert exc.value.message == "no spec paths given"
    assert exc.value.hint == "pass files or directories, or - for stdin"


def test_missing_path_is_a_usage_error(repo: Path) -> None:
    with pytest.raises(UsageError) as exc:
        read_sources(["specs", "spces/b.yaml"])
    assert exc.value.message == "spces/b.yaml: no such file or directory"
    assert exc.value.hint == "check the path; it is relative to the current directory"


def test_directory_without_yaml_is_a_usage_error(repo: Path) -> None:
    write(repo / "docs/notes.txt", "hi\n")
    write(repo / "docs/.hidden/x.yaml", "x: 1\n")
    with pytest.raises(UsageError) as exc:
        read_sources(["docs"])
    assert exc.value.message == "docs: no .yaml or .yml files in this directory"
    assert exc.value.hint == "pass the directory that holds your specs"


def test_non_utf8_file_is_a_usage_error(repo: Path) -> None:
    (repo / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError) as exc:
        read_sources(["latin1.yaml"])
    assert exc.value.message == "latin1.yaml:1:10: not UTF-8 text (invalid continuation byte)"
    assert exc.value.hint == "save the file as UTF-8"


def test_unreadable_file_is_a_usage_error(repo: Path) -> None:
    locked = write(repo / "locked.yaml", "a: 1\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("this user (root?) can read a file with mode 000")
        with pytest.raises(UsageError) as exc:
            read_sources(["locked.yaml"])
    finally:
        locked.chmod(0o644)
    assert exc.value.message == "locked.yaml: cannot read: Permission denied"
    assert exc.value.hint == "check the file's permissions"


def test_read_failure_is_a_usage_error_with_the_os_reason(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same path as the chmod test, but also when running as root
    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(UsageError) as exc:
        read_sources(["specs/a.yml"])
    assert exc.value.message == "specs/a.yml: cannot read: Permission denied"
    assert exc.value.exit_code == 2


# -- Sources.locate ------------------------------------------------------------------

TEXT = """\
# a comment
kind: Backfill
spec:
  select:
    method: descendants
    roots: [a, b]
  dates:
    - 2024-03-01
    - {from: 2024-03-09, to: 2024-03-01}
---
defaults: &defaults
  groups: 2
  order: up
spec:
  <<: *defaults
  dates: []
"""


def locate(doc: int, *path: PathPart) -> tuple[int | None, int | None]:
    d = Sources([SourceFile("f.yaml", TEXT)]).locate([Diagnostic("m", "f.yaml", doc, path)])[0]
    return d.line, d.col


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ((), (2, 1)),  # the document's first node
        (("kind",), (2, 1)),  # the last step into a mapping: the key
        (("spec", "select"), (4, 3)),
        (("spec", "select", "roots"), (6, 5)),
        (("spec", "select", "roots", 1), (6, 16)),  # a list index: the item
        (("spec", "dates", 1), (9, 7)),
        (("spec", "dates", 1, "to"), (9, 26)),
    ],
)
def test_locate_points_at_the_key_of_the_last_mapping_step(
    path: tuple[PathPart, ...], where: tuple[int, int]
) -> None:
    assert locate(0, *path) == where


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("spec", "nope", "x"), (4, 3)),  # spec's value
        (("spec", "dates", 7), (8, 5)),  # the list
        (("spec", "select", "roots", "x"), (6, 12)),  # [a, b]
        (("kind", "x"), (2, 7)),  # the scalar Backfill
    ],
)
def test_a_path_that_does_not_exist_falls_back_to_the_deepest_node(
    path: tuple[PathPart, ...], where: tuple[int, int]
) -> None:
    assert locate(0, *path) == where


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("spec", "order"), (13, 3)),  # found through the merge: the anchor's key
        (("spec", "groups"), (12, 3)),
        (("spec", "dates"), (16, 3)),
    ],
)
def test_locate_follows_merge_keys(path: tuple[PathPart, ...], where: tuple[int, int]) -> None:
    assert locate(1, *path) == where


def test_an_explicit_key_is_found_before_a_merged_one() -> None:
    text = "a: &a {x: 1}\nm:\n  <<: *a\n  x: 2\n"
    d = Sources([SourceFile("m.yaml", text)]).locate([Diagnostic("m", "m.yaml", 0, ("m", "x"))])
    assert (d[0].line, d[0].col) == (4, 3)


def test_a_diagnostic_found_twice_is_located_once_and_the_order_is_kept() -> None:
    twice = Diagnostic("m", "f.yaml", 0, ("spec",))
    other = Diagnostic("other", "f.yaml", 0, ("spec",))
    sources = Sources([SourceFile("f.yaml", TEXT)])
    located = sources.locate([other, twice, twice.at(3, 1), twice])
    assert [(d.message, d.line, d.col) for d in located] == [("other", 3, 1), ("m", 3, 1)]


def test_unknown_document_or_file_is_left_unlocated() -> None:
    sources = Sources([SourceFile("f.yaml", TEXT)])
    located = sources.locate(
        [Diagnostic("m", "f.yaml", 5, ("kind",)), Diagnostic("m", "other.yaml", 0, ("kind",))]
    )
    assert [(d.line, d.col) for d in located] == [(None, None), (None, None)]


def test_documents_before_a_syntax_error_are_located() -> None:
    sources = Sources([SourceFile("f.yaml", "a: 1\nb: 2\n---\nc: [\n")])
    d = sources.locate([Diagnostic("m", "f.yaml", 0, ("b",))])[0]
    assert (d.line, d.col) == (2, 1)


def test_a_located_diagnostic_keeps_its_line() -> None:
    sources = Sources([SourceFile("f.yaml", TEXT)])
    d = sources.locate([Diagnostic("m", "f.yaml", 0, ("kind",), line=40, col=2)])[0]
    assert (d.line, d.col) == (40, 2)


def test_locate_sorts_by_file_then_line_then_column() -> None:
    sources = Sources([SourceFile("f.yaml", TEXT)])
    sources.add(SourceFile("a.yaml", "x: 1\ny: 2\n"))
    located = sources.locate(
        [
            Diagnostic("f-select", "f.yaml", 0, ("spec", "select")),
            Diagnostic("a-y", "a.yaml", 0, ("y",)),
            Diagnostic("f-kind", "f.yaml", 0, ("kind",)),
            Diagnostic("f-roots-1", "f.yaml", 0, ("spec", "select", "roots", 1)),
            Diagnostic("f-roots-0", "f.yaml", 0, ("spec", "select", "roots", 0)),
            Diagnostic("a-x", "a.yaml", 0, ("x",)),
        ]
    )
    assert [d.message for d in located] == [
        "a-x",
        "a-y",
        "f-kind",
        "f-select",
        "f-roots-0",
        "f-roots-1",
    ]


def test_formatted_diagnostic_has_file_line_col_and_path() -> None:
    sources = Sources([SourceFile("fix.yaml", "kind: Backfill\nspec:\n  groups: 1\n  grups: 2\n")])
    d = Diagnostic("unknown field 'grups'", "fix.yaml", 0, ("spec", "grups"), hint="did you mean?")
    (located,) = sources.locate([d])
    assert located.format() == (
        "fix.yaml:4:3: error: $.spec.grups: unknown field 'grups'\n  hint: did you mean?"
    )
