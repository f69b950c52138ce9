"""sha256 and blake2b without loading OpenSSL.

`hashlib` imports `_hashlib` first, which loads and starts libcrypto: 4-10 ms of a
command's start (measured before `apply --wait`'s first instance, issue 15), for two
hashes that Python also implements itself, with the same digests (hashlib falls back to
them where OpenSSL is missing; its blake2b is always Python's own). A Python built
without them gets hashlib's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import blake2b, sha256
else:
    try:
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - a Python built without its own blake2
        from hashlib import blake2b
    try:
        from _sha2 import sha256  # Python 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # pragma: no cover - a Python built without its own sha256
            from hashlib import sha256

__all__ = ["blake2b", "sha256"]
