"""Outputs that appear under their final name only when complete.

A file is written beside its final path and renamed over it (:func:`atomic_write`, or
:func:`partial_path` for a video written frame by frame); a folder is filled under a hidden
``.NAME.partial`` name and renamed when done (:class:`PartialFolder`). After a crash nothing that
looks complete is left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from evss.errors import EvssError


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a half-written file.

    The temporary file sits beside ``path`` (same file system, so the rename is atomic), is
    flushed to disk before the rename, and is removed if anything fails or interrupts. Failures of
    the file system (a folder in the way, no permission, a full disk) raise an EvssError naming
    ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise EvssError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise EvssError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def partial_path(path: Path) -> Path:
    """Where an output is written before it is complete: a hidden sibling with the same suffix."""
    return path.with_name(f".{path.stem}.partial{path.suffix or '.mp4'}")


class PartialFolder:
    """An output folder that appears under its final name only when complete.

    Files go into a hidden sibling ``.NAME.partial``; :meth:`commit` renames it to ``NAME``
    (replacing an earlier output there), :meth:`discard` deletes it. After a crash there is a
    ``.NAME.partial`` folder and no ``NAME``, so nothing that looks complete is left behind; the
    next run clears the stale partial folder.

    ``owned(path)`` says whether an entry of an existing ``NAME`` is an output this kind of
    folder holds: a folder with anything else is refused before any work starts, so a user's own
    files are never replaced.
    """

    def __init__(self, final: Path, *, owned, what: str) -> None:
        self.final, self.what = Path(final), what
        if not self.final.name:  # "." or "/": name the folder itself
            self.final = self.final.resolve()
        if self.final.exists():
            if not self.final.is_dir():
                raise EvssError(f"{what} {self.final}: exists and is not a folder")
            foreign = sorted(p.name for p in self.final.iterdir() if not owned(p))
            if foreign:
                raise EvssError(f"{what} {self.final}: the folder holds {foreign[0]!r}"
                                + (f" and {len(foreign) - 1} more entries" if len(foreign) > 1 else "")
                                + " that evss did not write; choose an empty or new folder")
        self.path = self.final.with_name(f".{self.final.name}.partial")
        if self.path.is_symlink() or self.path.is_file():
            self.path.unlink()
        elif self.path.exists():
            shutil.rmtree(self.path)  # a stale partial folder of an interrupted run: ours by its name
        self.path.mkdir(parents=True)

    def commit(self) -> Path:
        """Rename the partial folder to its final name (an earlier output there is replaced)."""
        try:
            if self.final.exists():
                old = self.final.with_name(f".{self.final.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.rename(self.final, old)
                os.rename(self.path, self.final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(self.path, self.final)
        except OSError as exc:
            raise EvssError(f"{self.what} {self.final}: cannot move the finished folder {self.path} into place "
                            f"({exc.strerror or exc})") from None
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


_NUMBERED_PNG = re.compile(r"\d{6}\.png")


def numbered_pngs(path: Path) -> bool:
    """``owned`` for :class:`PartialFolder`: frame-numbered PNGs (000000.png, ...), as evss writes them."""
    return path.is_file() and not path.is_symlink() and _NUMBERED_PNG.fullmatch(path.name) is not None
