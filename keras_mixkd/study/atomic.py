"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file of a runs folder is written to a temporary file in the same folder,
flushed to disk, and moved over the target with `os.replace` (atomic on POSIX
and Windows when both paths are on one file system).
"""

import contextlib
import json
import math
import os
import tempfile


@contextlib.contextmanager


def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path`; on success move it over `path`.

    For writers that want a file name rather than a file object (Keras's
    `model.save` wants a name ending in ".keras", matplotlib's `savefig` a
    known extension): the temporary name keeps `path`'s suffix. On an
    exception the temporary file is removed and `path` is left untouched.

    Arguments:
        path: the final path.
        suffix: suffix of the temporary file; defaults to `path`'s extension.

    Example:

    >>> with atomic_path("teacher.keras") as tmp:
    ...     model.save(tmp)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    handle, tmp = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".partial" + suffix, dir=folder
    )
    os.close(handle)
    # mkstemp creates the file 0600 whatever the umask; a shared machine's
    # collaborators must be able to read results, as with any file the user writes.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _current_umask():
    # os.umask both sets and returns: set it back at once (no umask getter in the stdlib).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path, text):
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, data):
    """Write `data` as indented JSON to `path` atomically.

    NaN and infinities become `null`, so the file is strict JSON that any
    reader (not only Python's) accepts.
    """
    write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")


def read_json(path):
    """Read a JSON file written by `write_json`; a damaged file is named in the error."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            # Atomic writes never leave half a file: this one was changed by something else.
            raise ValueError(
                f"{path} is not valid JSON ({error}). Restore it, or delete it (a file in cells/: "
                "that cell runs again on the next run)."
            ) from None


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # NumPy / backend scalars
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fsync_file(path):
    # Make the bytes durable before the rename makes them visible.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
