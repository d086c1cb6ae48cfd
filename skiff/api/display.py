"""Pure text helpers for tables and `describe` pages, shared by the kinds' presentation
(skiff/api/kinds/*: columns, rows, describe sections) and the CLI's printers.

Nothing here knows a kind; everything is a function of its arguments (`age` reads the
clock only when `now` is not given).
"""

import datetime

DESCRIBE_LABEL_WIDTH = 20


def age(timestamp: str, now: datetime.datetime | None = None) -> str:
    """kubectl's short age: 45s, 5m, 3h, 2d (<unknown> when unset)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<invalid>"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    s = max(0, int((now - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 2:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def labels_text(m) -> str:
    """k=v,k2=v2 in key order; <none> when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted(m.items())) or "<none>"


def condition_status(conditions, ctype) -> str:
    """The status ("True", "False", "Unknown") of the condition of type ctype; "" when absent."""
    for c in conditions:
        if c.type == ctype:
            return c.status
    return ""


def format_rows(rows) -> str:
    """Rows of cells as kubectl's columns: left-aligned, three spaces apart, no trailing blanks."""
    if not rows:
        return ""
    widths = [max(len(str(r[i])) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [str(c).ljust(widths[i]) if i < len(r) - 1 else str(c) for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def kv(rows, width=DESCRIBE_LABEL_WIDTH) -> str:
    """`describe`'s "Label:   value" lines."""
    return "\n".join(f"{(k + ':').ljust(width)}{v}" for k, v in rows)


def indent(text: str, n: int = 2) -> str:
    return "\n".join((" " * n + line) if line else line for line in text.splitlines())
