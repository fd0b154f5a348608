"""Every word ocitrace shows a person, in each language: strings.yaml, looked up by key."""

from __future__ import annotations

import errno
from functools import cache
from pathlib import Path
from typing import Any

from . import tables

LANGUAGES = ("en", "zh")
STRINGS_PATH = Path(__file__).with_name("strings.yaml")

# OS errors a user meets when ocitrace writes a file, by errno: the system's own words are English.
_OS_ERRORS = {errno.EACCES: "os_permission", errno.EPERM: "os_permission", errno.ENOENT: "os_missing",
              errno.ENOTDIR: "os_not_directory", errno.EISDIR: "os_is_directory", errno.ENOSPC: "os_disk_full",
              errno.EROFS: "os_read_only", errno.EDQUOT: "os_disk_full", errno.EADDRINUSE: "os_address_in_use",
              errno.EADDRNOTAVAIL: "os_address_not_available"}


@cache
def strings() -> dict[str, dict[str, str]]:
    with open(STRINGS_PATH, encoding="utf-8") as fh:
        return tables.load(fh)


def text(key: str, lang: str, **values: Any) -> str:
    entry = strings()[key]
    return (entry.get(lang) or entry["en"]).format(**values)


def os_error_text(exc: OSError, lang: str) -> str:
    """Why an operation on a file or socket failed, in the reader's language."""
    key = _OS_ERRORS.get(exc.errno or 0)
    if key is not None:
        return text(key, lang)
    return exc.strerror or type(exc).__name__
