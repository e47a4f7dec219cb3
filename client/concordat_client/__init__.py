"""The Concordat partner and auditor client: hash, sign, submit, sync, match, verify (docs/client.md).

It imports nothing of the hub. ``verifier.py`` (with ``crosscheck.py``) and ``lookup.py`` stay
usable as single files with only the standard library and ``cryptography``.
"""

__version__ = "0.1.0"
