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

_FETCH_HINT = (
    "fetch it first (git fetch origin main); in GitHub Actions check out with fetch-depth: 0"
)


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


def sources_at(ref: str, paths: Sequence[str]) -> list[SourceFile]:
    """The spec files under `paths` at `ref` (UsageError when that cannot be read)."""
    try:
        root = Path(_git(["rev-parse", "--show-toplevel"]).decode().strip())
    except _GitFailed as exc:
        raise UsageError(
            f"--base {ref}: {Path.cwd()} is not inside a git repository",
            hint="run check in a clone of the specs repository, or drop --base",
        ) from exc
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]).decode().strip()
    except _GitFailed as exc:
        raise UsageError(f"--base {ref}: no such commit, branch or tag", hint=_FETCH_HINT) from exc
    wanted: list[tuple[str, str]] = []  # (name shown to the user, path in the repository)
    for arg in paths:
        if arg == STDIN:
            raise UsageError(
                "--base cannot compare specs read from stdin",
                hint="pass the spec files or directories instead of -",
            )
        try:
            below = Path(arg).resolve().relative_to(root.resolve())
        except ValueError as exc:
            raise UsageError(f"--base {ref}: {arg} is outside the repository {root}") from exc
        prefix = PurePosixPath(below.as_posix())
        listing = _git(["ls-tree", "-r", "-z", "--name-only", commit, "--", str(prefix)], cwd=root)
        for entry in filter(None, listing.decode().split("\0")):
            inner = () if entry == str(prefix) else PurePosixPath(entry).parts[len(prefix.parts) :]
            if inner and not is_spec_file(inner):
                continue
            wanted.append((str(Path(arg, *inner)), entry))
    return _read_blobs(commit, sorted(set(wanted)), root)


def _read_blobs(commit: str, wanted: list[tuple[str, str]], root: Path) -> list[SourceFile]:
    if not wanted:
        return []
    request = "".join(f"{commit}:{path}\n" for _, path in wanted).encode()
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
