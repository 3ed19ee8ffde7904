"""Writing files so that a failure leaves the previous file intact.

What a replaced file keeps: its permission bits (a model written by a monthly
job stays readable by the scoring service that reads it as another user), its
group where the writer may set it, and any symbolic link pointing to it (the
bytes are written to the file the link points to; the link stays). A new file
gets the permissions ``open`` would give it: ``0o666`` less the umask.
"""

import os
import secrets
import stat


def write_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` so that a failure leaves any old file intact.

    The bytes go to a temporary file in the target's directory, are flushed to disk,
    and replace the target in one ``os.replace``. A symbolic link is followed: the
    file it points to is replaced and the link kept. An existing file's permission
    bits (and group, where permitted) carry over to its replacement; a new file
    follows the umask, as with ``open(path, "wb")``.
    """
    target = os.path.realpath(path)   # through symbolic links, to the file itself
    directory = os.path.dirname(target)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise IsADirectoryError(
            f"{os.fspath(path)!r} is not a regular file (it is "
            f"{_kind(existing.st_mode)}); pass the path of a file to write"
        )
    handle, temporary = _create_temporary(directory)
    try:
        with os.fdopen(handle, "wb") as file:
            if existing is not None:
                _copy_permissions(file.fileno(), temporary, existing)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _create_temporary(directory):
    # os.open applies the umask to 0o666, as open() does for a new file
    # (tempfile.mkstemp would fix 0o600 whatever the umask)
    for _ in range(100):
        temporary = os.path.join(directory, f".skcl-{secrets.token_hex(8)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def _copy_permissions(fd, temporary, existing):
    if hasattr(os, "fchown"):
        try:
            os.fchown(fd, -1, existing.st_gid)
        except PermissionError:
            pass  # a group the writer is not in: the writer's own group, as any new file
    os.chmod(temporary, stat.S_IMODE(existing.st_mode))


def _sync_directory(directory):
    # the rename itself reaches the disk only with its directory's entry
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _kind(mode):
    return "a directory" if stat.S_ISDIR(mode) else "a device, pipe or socket"
