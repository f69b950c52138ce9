"""backfill_ctl.hashes: Python's own sha256 and blake2b give hashlib's digests."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from backfill_ctl import hashes

TEXTS = [b"", b"abc", b"backfill\x1fnode\x1f", bytes(range(256)) * 41]


@pytest.mark.parametrize("data", TEXTS)
def test_the_digests_are_hashlibs(data: bytes) -> None:
    assert hashes.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    ours, theirs = hashes.blake2b(digest_size=8), hashlib.blake2b(digest_size=8)
    ours.update(data)
    theirs.update(data)
    assert ours.copy().hexdigest() == theirs.hexdigest()


def test_they_do_not_load_openssl() -> None:
    probe = "import sys, backfill_ctl.hashes; print('_hashlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
