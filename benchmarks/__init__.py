"""Benchmarks and the synthetic histories they (and the tests) run on."""
