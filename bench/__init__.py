"""Benchmark of Rechecker's check pipeline against Prometheus blackbox_exporter.

Run it with ``make bench`` (or ``.venv/bin/python -m bench.run --help``); see bench/README.md.
Nothing here is a test: it measures, prints a table and writes bench/results/latest.json.
"""
