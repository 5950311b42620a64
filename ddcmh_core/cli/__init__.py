"""Command-line tools of ddcmh (``ddcmh-bench``)."""
