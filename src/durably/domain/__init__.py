"""The domain: pure code with no IO (statuses, transitions, durations, back-off, errors, events)."""
