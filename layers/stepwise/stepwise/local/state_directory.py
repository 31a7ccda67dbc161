"""The local stack's state directory: its files (snapshot, journal generations, meta, lock) and how moto's
backends are pickled into them and put back. What goes into them, and when, is :mod:`stepwise.local.persistence`.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
DEFAULT_DIRECTORY = ".stepwise"
FRAME = struct.Struct(">II")  # payload length, CRC32 of the payload
_SNAPSHOT = "snapshot.pickle"
_JOURNAL_PREFIX = "journal."
_META = "state.json"
_LOCK = "lock"


class StateError(Exception):
    """The state directory cannot be used (in use, written by another moto, unreadable); the message says why."""


@dataclass
class StateDirectory:
    """The directory a local stack keeps its state in, held (locked) from :meth:`open` until :meth:`close`."""

    path: Path
    moto_version: str
    _lock_file: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path, *, fresh: bool = False) -> StateDirectory:
        """Create or open ``path`` and hold it; ``fresh`` forgets what it kept. Raises :class:`StateError`."""
        import moto

        directory = cls(path.resolve(), getattr(moto, "__version__", "unknown"))
        try:
            # It holds agents' credentials and the user pool's signing key: for the user's eyes only.
            directory.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_file = (directory.path / _LOCK).open("a+")
        except OSError as error:
            raise StateError(f"{path} cannot be used as the state directory: {error}") from error
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "?"
            lock_file.close()
            raise StateError(
                f"{path} is in use by another stepwise dev (pid {holder}): stop it, or give this one --state-dir"
            ) from error
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(str(os.getpid()))
        lock_file.flush()
        directory._lock_file = lock_file
        try:
            if fresh:
                directory._forget()
            directory._check_meta()
        except BaseException:
            directory.close()
            raise
        return directory

    def close(self) -> None:
        """Let the directory go (another stack may open it)."""
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    @property
    def empty(self) -> bool:
        """Whether nothing is kept yet."""
        return not (self.path / _SNAPSHOT).exists() and not self.journal_generations()

    def journal_path(self, generation: int) -> Path:
        """The journal file of ``generation``."""
        return self.path / f"{_JOURNAL_PREFIX}{generation}"

    def journal_generations(self) -> list[int]:
        """The generations of the journal files present, oldest first."""
        found = []
        for entry in self.path.glob(f"{_JOURNAL_PREFIX}*"):
            suffix = entry.name.removeprefix(_JOURNAL_PREFIX)
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def read_snapshot(self) -> tuple[int, dict[str, dict[str, bytes]]]:
        """(the last journal generation it covers, pickled backends by service and region); (0, {}) when none."""
        path = self.path / _SNAPSHOT
        if not path.exists():
            return 0, {}
        try:
            with path.open("rb") as file:
                snapshot = pickle.load(file)  # noqa: S301 - our own file, in the user's own checkout
        except Exception as error:
            raise StateError(f"{path} cannot be read ({error}): start with --fresh to begin anew") from error
        return int(snapshot["generation"]), snapshot["backends"]

    def write_snapshot(self, generation: int, backends: dict[str, dict[str, bytes]]) -> None:
        """Replace the snapshot whole (written aside, synced, renamed), then drop the journals it covers."""
        path = self.path / _SNAPSHOT
        partial = path.with_suffix(".partial")
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            pickle.dump({"format": FORMAT, "generation": generation, "backends": backends}, file, protocol=5)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
        _sync_directory(self.path)
        for older in self.journal_generations():
            if older <= generation:
                self.journal_path(older).unlink(missing_ok=True)

    def _check_meta(self) -> None:
        meta_path = self.path / _META
        if self.empty or not meta_path.exists():
            meta = {"format": FORMAT, "moto": self.moto_version}
            meta_path.write_text(json.dumps(meta) + "\n")
            return
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as error:
            raise StateError(f"{meta_path} cannot be read ({error}): start with --fresh to begin anew") from error
        if meta.get("format") != FORMAT or meta.get("moto") != self.moto_version:
            raise StateError(
                f"{self.path} was written by stepwise state format {meta.get('format')} with moto {meta.get('moto')}; "
                f"this is format {FORMAT} with moto {self.moto_version}, which cannot read it: start with --fresh "
                "to begin anew (or go back to that version to keep it)"
            )

    def _forget(self) -> None:
        for entry in self.path.iterdir():
            if entry.name == _LOCK:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def frames(path: Path) -> Iterator[bytes]:
    """The payloads of a journal file, in order; a last frame cut short (a crash mid-append) ends it."""
    data = path.read_bytes()
    offset = 0
    while offset + FRAME.size <= len(data):
        length, checksum = FRAME.unpack_from(data, offset)
        payload = data[offset + FRAME.size : offset + FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != checksum:
            return
        yield payload
        offset += FRAME.size + length


# --------------------------------------------------------------------------------------- moto's backends


def backends_of(service: str) -> Any:
    from moto.backends import get_backend
    from moto.core.models import DEFAULT_ACCOUNT_ID

    return get_backend(service)[DEFAULT_ACCOUNT_ID]  # type: ignore[call-overload]


def _drop(value: Any) -> Any:
    return value


def _signing_key(value: dict[str, Any]) -> Any:
    from joserfc.jwk import RSAKey

    return RSAKey.import_key(value)


class _BackendPickler(pickle.Pickler):
    """Pickles a moto backend, with what plain pickle cannot take: the user pool's signing key (kept, as a JWK),
    and the local log's hook on the table's stream (left out: the next start puts its own)."""

    def reducer_override(self, obj: Any) -> Any:
        from joserfc.jwk import RSAKey

        from stepwise.local.execution_states import ExecutionStateLog

        if isinstance(obj, RSAKey):
            return _signing_key, (obj.as_dict(private=True),)
        if isinstance(obj, ExecutionStateLog):
            return _drop, (obj.stream,)
        return NotImplemented


def pickle_backend(backend: Any) -> bytes:
    """One moto backend, pickled (see :class:`_BackendPickler`)."""
    buffer = io.BytesIO()
    _BackendPickler(buffer, protocol=5).dump(backend)
    return buffer.getvalue()


def install_backend(service: str, region: str, pickled: bytes) -> None:
    """Make moto's backend of ``service`` in ``region`` the pickled one (the live object keeps its identity)."""
    restored = pickle.loads(pickled)  # noqa: S301 - our own file, in the user's own checkout
    live = backends_of(service)[region]
    live.__dict__.clear()
    live.__dict__.update(restored.__dict__)
