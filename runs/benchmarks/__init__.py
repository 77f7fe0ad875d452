"""Benchmark scenarios too big for the ``bench`` command's own module."""
