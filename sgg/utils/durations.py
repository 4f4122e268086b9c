"""Durations as logs and tables print them."""


def format_hours(seconds: float) -> str:
    """``H:MM:SS`` (whole seconds, truncated) with as many hours as it takes: ``datetime.timedelta`` writes
    "1 day, 2:03:04", which the benchmark runner's log parser does not read, and ``time.strftime`` wraps at 24
    hours."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
