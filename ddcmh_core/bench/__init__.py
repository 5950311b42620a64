"""``ddcmh-bench``'s engine: configuration, the cached run loop, and reports."""
