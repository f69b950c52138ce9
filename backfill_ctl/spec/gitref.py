"""Spec files as they are at a git ref, for `check --base REF`. I/O at the edge.

Files are named exactly as `read_sources` names them at HEAD (the path as given plus
the path below it), so the two sides compare document by document. All blobs are read
through one `git cat-file --batch`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from backfill_ctl.errors import UsageError
from backfill_ctl.spec.source import STDIN, SourceFile, is_spec_file

if TYPE_CHECKING:
    from collections.abc import Sequence


def _git(args: Sequence[str], stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], input=stdin, capture_output=True, cwd=cwd, check=False, timeout=120
        )
    except FileNotFoundError as exc:
        raise UsageError(
            "--base needs git, and git is not installed", hint="install git, or drop --base"
        ) from exc
    if done.returncode != 0:
        raise _GitFailed(done.stderr.decode(errors="replace").strip())
    return done.stdout


class _GitFailed(Exception):
    pass


def _fetch_hint(ref: str) -> str:
    remote, _, branch = ref.partition("/")
    fetch = f"git fetch {remote} {branch}" if branch else "git fetch origin <branch>"
    return f"fetch it first ({fetch}); in GitHub Actions check out with fetch-depth: 0"


def sources_at(ref: str, paths: Sequence[str]) -> list[SourceFile]:
    """The spec files under `paths` at `ref` (UsageError when that cannot be read)."""
    try:
        root = Path(_git(["rev-parse", "--show-toplevel"]).decode().strip())
    except _GitFailed as exc:
        raise UsageError(
            f"--base {ref}: {Path.cwd()} is not inside a git repository",
            hint=f"run check in a clone of the specs repository, or drop --base (git: {exc})",
        ) from exc
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]).decode().strip()
    except _GitFailed as exc:
        raise UsageError(
            f"--base {ref}: no such commit, branch or tag", hint=_fetch_hint(ref)
        ) from exc
    wanted: dict[str, str] = {}  # name shown to the user -> blob id
    for arg in paths:
        if arg == STDIN:
            raise UsageError(
                "--base cannot compare specs read from stdin",
                hint="pass the spec files or directories instead of -",
            )
        try:
            below = Path(arg).resolve().relative_to(root.resolve())
        except ValueError as exc:
            raise UsageError(
                f"--base {ref}: {arg} is outside the repository {root}",
                hint="run check from inside the repository that holds the specs",
            ) from exc
        prefix = PurePosixPath(below.as_posix())
        listing = _git(["ls-tree", "-r", "-z", commit, "--", str(prefix)], cwd=root)
        for record in filter(None, listing.split(b"\0")):
            meta, _, raw_path = record.partition(b"\t")
            _mode, kind, blob = meta.decode().split()
            try:
                entry = raw_path.decode()
            except UnicodeDecodeError as exc:
                raise UsageError(
                    f"--base {ref}: a file name under {arg} is not UTF-8: {raw_path!r}",
                    hint="rename the file",
                ) from exc
            inner = () if entry == str(prefix) else PurePosixPath(entry).parts[len(prefix.parts) :]
            if kind != "blob" or (inner and not is_spec_file(inner)):
                continue  # submodules, and what is not a spec file at HEAD either
            wanted[str(Path(arg, *inner))] = blob
    return _read_blobs(sorted(wanted.items()), root)


def _read_blobs(wanted: list[tuple[str, str]], root: Path) -> list[SourceFile]:
    """The blobs' text, read by id (ids, unlike paths, never hold a newline)."""
    if not wanted:
        return []
    request = "".join(f"{blob}\n" for _, blob in wanted).encode()
    out = _git(["cat-file", "--batch"], stdin=request, cwd=root)
    files, pos = [], 0
    for name, _ in wanted:
        header_end = out.index(b"\n", pos)
        _sha, _kind, size = out[pos:header_end].split()
        start = header_end + 1
        blob = out[start : start + int(size)]
        pos = start + int(size) + 1  # the blob is followed by a newline
        try:
            files.append(SourceFile(name, blob.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"{name} at the base ref: not UTF-8 text", hint="save the file as UTF-8"
            ) from exc
    return files
