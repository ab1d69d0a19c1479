"""Exceptions of the metrics package (a module of its own so that every metric module can import it)."""


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (e.g. pretrained weights are not on disk). The message is the reason,
    and says what to put where to make it available. The runner records the value as missing with it."""
