"""Plain-text tables for terminals and logs."""

__all__ = ["text_table"]


def text_table(lines):
    """Return ``lines`` (a header, then rows of strings) as aligned text lines.

    The first column is left-aligned, the others right-aligned (numbers), and a
    rule of dashes follows the header.
    """
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = []
    for index, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        text.append("  ".join(cells).rstrip())
        if index == 0:
            text.append("  ".join("-" * width for width in widths))
    return text
