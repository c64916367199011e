"""The fleet-scale benchmark (issue 5): our scanner against the peers' call pattern.

`python -m bench` (or `python3 tasks.py bench`) builds a synthetic fleet, serves it from the AWS
emulator in its own process (latency, AWS-like throttling per service, account and region), and
runs each measured cycle in a fresh scanner process, so CPU seconds and peak RSS describe only
that scanner. See bench/RESULTS.md for the figures and how to read them.
"""
