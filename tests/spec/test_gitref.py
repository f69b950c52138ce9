"""`sources_at`: the spec files as they are at a git ref, named exactly as at HEAD."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill_ctl.errors import UsageError
from backfill_ctl.spec.gitref import sources_at
from backfill_ctl.spec.source import SourceFile, read_sources
from tests.cli.helpers import GitRepo, isolate_git

FETCH_HINT = (  # "nope" names no remote: the hint cannot name the branch
    "fetch it first (git fetch origin <branch>); in GitHub Actions check out with fetch-depth: 0"
)

# A spec directory as it is committed: nested YAML, both suffixes, and what is not a spec.
FILES: dict[str, str | bytes] = {
    "specs/catalog.yaml": "kind: catalog\n",
    "specs/backfills/fix.yml": "kind: fix\n",
    "specs/backfills/UPPER.YAML": "kind: upper\n",
    "specs/.drafts/draft.yaml": "kind: hidden\n",
    "specs/.git-crypt/key.yaml": "kind: hidden too\n",
    "specs/README.md": "# not a spec\n",
    "specs/fix.yaml.bak": "kind: backup\n",
    "other/elsewhere.yaml": "kind: outside specs\n",
}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    isolate_git(monkeypatch, tmp_path)
    repo = GitRepo(tmp_path / "repo")
    repo.write(FILES)
    repo.commit("base")
    monkeypatch.chdir(repo.root)
    return repo


def names(files: list[SourceFile]) -> list[str]:
    return [f.name for f in files]


# -- the same names as at HEAD ---------------------------------------------------------


@pytest.mark.parametrize(
    "paths",
    [
        ["specs"],
        ["specs/"],
        ["./specs"],
        ["specs/backfills"],
        ["specs/catalog.yaml"],
        ["specs/README.md"],  # a file given by name is read whatever its suffix, as at HEAD
        ["specs/catalog.yaml", "specs"],  # a file given twice is read once
        ["."],
        ["specs", "other"],
    ],
    ids=str,
)
def test_files_are_named_and_filtered_as_read_sources_does_at_head(
    repo: GitRepo, paths: list[str]
) -> None:
    at_head = read_sources(paths)  # the working tree is the commit

    at_base = sources_at("main", paths)

    assert sorted(names(at_base)) == sorted(names(at_head))
    assert {f.name: f.text for f in at_base} == {f.name: f.text for f in at_head}


def test_hidden_directories_and_other_files_are_skipped(repo: GitRepo) -> None:
    assert names(sources_at("main", ["specs"])) == [
        "specs/backfills/UPPER.YAML",
        "specs/backfills/fix.yml",
        "specs/catalog.yaml",
    ]


def test_names_are_relative_to_the_current_directory_like_the_paths(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo.root / "specs")

    assert names(sources_at("main", ["."])) == [
        "backfills/UPPER.YAML",
        "backfills/fix.yml",
        "catalog.yaml",
    ]
    assert names(sources_at("main", ["../other"])) == ["../other/elsewhere.yaml"]


# -- the content at the ref, not in the working tree -------------------------------------


def test_the_content_is_the_committed_one(repo: GitRepo) -> None:
    repo.write({"specs/catalog.yaml": "kind: edited\n", "specs/new.yaml": "kind: new\n"})
    repo.remove("specs/backfills/fix.yml")

    files = {f.name: f.text for f in sources_at("main", ["specs"])}

    assert files == {
        "specs/backfills/UPPER.YAML": "kind: upper\n",
        "specs/backfills/fix.yml": "kind: fix\n",  # deleted since, still on the base
        "specs/catalog.yaml": "kind: catalog\n",  # edited since: the old text
    }


@pytest.mark.parametrize("ref", ["main", "v1", "HEAD~1", "first", "<sha>"])
def test_any_commit_ish_names_the_base(repo: GitRepo, ref: str) -> None:
    base = repo.git("rev-parse", "HEAD").strip()
    repo.git("tag", "v1")
    repo.git("branch", "first")
    repo.git("switch", "--quiet", "-c", "feature")
    repo.write({"specs/catalog.yaml": "kind: feature\n"})
    repo.commit("feature")

    files = {f.name: f.text for f in sources_at(base if ref == "<sha>" else ref, ["specs"])}

    assert files["specs/catalog.yaml"] == "kind: catalog\n"


def test_a_directory_that_did_not_exist_at_the_base_holds_no_file(repo: GitRepo) -> None:
    repo.write({"later/new.yaml": "kind: new\n"})

    assert sources_at("main", ["later"]) == []
    assert names(sources_at("main", ["later", "specs/catalog.yaml"])) == ["specs/catalog.yaml"]


def test_every_blob_is_read_whole_empty_unterminated_and_unicode_ones_too(repo: GitRepo) -> None:
    # One `git cat-file --batch` returns them all: each must be cut at its own size.
    files: dict[str, str | bytes] = {
        f"many/f{n:02}.yaml": f"n: {n}\n" + "x: |\n  line\n  \n" * n for n in range(25)
    }
    files |= {
        "many/empty.yaml": "",
        "many/no-newline.yaml": "a: 1",
        "many/blank-lines.yaml": "\n\n\n",
        "many/café ünïcode.yaml": "name: café ☕\n",
        "many/with space.yml": "a: 2\n",
    }
    repo.write(files)
    repo.commit("many")

    got = {f.name: f.text for f in sources_at("main", ["many"])}

    assert got == files


# -- what cannot be compared: usage errors ---------------------------------------------


def test_a_missing_ref_says_how_to_fetch_it(repo: GitRepo) -> None:
    with pytest.raises(UsageError) as exc:
        sources_at("nope", ["specs"])

    assert exc.value.message == "--base nope: no such commit, branch or tag"
    assert exc.value.hint == FETCH_HINT
    assert exc.value.exit_code == 2


def test_a_ref_that_is_not_a_commit_is_not_a_base(repo: GitRepo) -> None:
    with pytest.raises(UsageError) as exc:
        sources_at("main:specs", ["specs"])  # a tree

    assert exc.value.message == "--base main:specs: no such commit, branch or tag"


def test_outside_a_git_repository_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path)
    (tmp_path / "specs").mkdir()
    monkeypatch.chdir(tmp_path)

    with pytest.raises(UsageError) as exc:
        sources_at("main", ["specs"])

    assert exc.value.message == f"--base main: {tmp_path} is not inside a git repository"
    assert exc.value.hint == (
        "run check in a clone of the specs repository, or drop --base (git: fatal: not a git "
        "repository (or any of the parent directories): .git)"
    )


def test_a_path_outside_the_repository_is_a_usage_error(repo: GitRepo, tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()

    with pytest.raises(UsageError) as exc:
        sources_at("main", ["specs", "../loose"])

    assert exc.value.message == f"--base main: ../loose is outside the repository {repo.root}"


def test_stdin_cannot_be_compared(repo: GitRepo) -> None:
    with pytest.raises(UsageError) as exc:
        sources_at("main", ["specs", "-"])

    assert exc.value.message == "--base cannot compare specs read from stdin"
    assert exc.value.hint == "pass the spec files or directories instead of -"


def test_a_file_that_is_not_utf8_at_the_base_is_a_usage_error(repo: GitRepo) -> None:
    repo.write({"specs/latin1.yaml": "name: caf\xe9\n".encode("latin-1")})
    repo.commit("latin-1")
    repo.write({"specs/latin1.yaml": "name: café\n"})  # fixed since, but not on the base

    with pytest.raises(UsageError) as exc:
        sources_at("main", ["specs"])

    assert exc.value.message == "specs/latin1.yaml at the base ref: not UTF-8 text"
    assert exc.value.hint == "save the file as UTF-8"


def test_without_git_installed_base_is_a_usage_error(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(UsageError) as exc:
        sources_at("main", ["specs"])

    assert exc.value.message == "--base needs git, and git is not installed"
    assert exc.value.hint == "install git, or drop --base"


def test_a_remote_ref_gets_a_hint_naming_its_branch(repo: GitRepo) -> None:
    with pytest.raises(UsageError) as exc:
        sources_at("origin/release-7", ["specs"])
    assert exc.value.hint == (
        "fetch it first (git fetch origin release-7); in GitHub Actions check out with "
        "fetch-depth: 0"
    )


def test_odd_file_names_and_submodules_at_the_base_are_handled(repo: GitRepo) -> None:
    repo.write({"specs/new\nline.yaml": "a: 1\n", "specs/ok.yaml": "b: 2\n"})
    repo.git("update-index", "--add", "--cacheinfo", "160000", "a" * 40, "specs/module")
    repo.commit("odd names and a submodule")
    files = sources_at("HEAD", ["specs"])
    assert ("specs/new\nline.yaml", "a: 1\n") in [(f.name, f.text) for f in files]
    assert "specs/module" not in [f.name for f in files]
