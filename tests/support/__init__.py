"""Helpers for the test suite and the benchmarks: real servers and child processes."""
