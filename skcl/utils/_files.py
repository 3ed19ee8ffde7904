"""Writing files so that a failure leaves the previous file intact."""

import os
import tempfile


def write_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` so that a failure leaves any old file intact.

    The bytes go to a temporary file in the target's directory, are flushed to disk,
    and replace the target in one ``os.replace``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".skcl-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
