"""Joining paths that come from files (manifests, list files) with the dataset root, safely.

A manifest or list file is data, and data can be crafted: an entry such as ``../../home/me`` or
``/etc`` must not make a reader open, list or delete files outside the dataset it describes.
:func:`safe_join` is the one place that joins such a path with its root.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from evss.errors import DataError


def safe_join(root: str | Path, relative: object, *, source: str | Path | None = None) -> Path:
    """``root / relative`` for a path read from a file, refusing any that could leave ``root``.

    Refused (DataError naming ``source``, the entry and why): a value that is not a non-empty
    string, an absolute path (POSIX or Windows style, ``C:`` drives and ``\\\\server`` shares
    included), a NUL byte, any ``..`` component that climbs above ``root``, and a path that leads
    out of ``root`` through a symbolic link (checked on the resolved path, so a link inside the
    tree that points elsewhere is refused too; the root itself may be a link). The path does not
    have to exist. Returns the joined, unresolved path (``root / relative``), so messages show the
    names the user knows.
    """
    where = f"{source}: " if source is not None else ""
    if not isinstance(relative, str) or not relative.strip():
        raise DataError(f"{where}path entry {relative!r} is not a non-empty string")
    if "\x00" in relative:
        raise DataError(f"{where}path entry {relative!r} contains a NUL byte")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or windows.root:
        raise DataError(f"{where}path entry {relative!r} is absolute; entries must be relative to {root}")
    depth = 0
    for part in windows.parts:  # splits on both / and \
        if part == "..":
            depth -= 1
            if depth < 0:
                raise DataError(f"{where}path entry {relative!r} climbs out of {root} with '..'")
        elif part not in (".", ""):
            depth += 1
    root = Path(root)
    joined = root / relative
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(joined))
    if real != real_root and real_root not in real.parents:
        raise DataError(f"{where}path entry {relative!r} leads out of {root} through a symbolic link "
                        f"(it resolves to {real})")
    return joined
