"""Speed and memory targets of canary-bot, each measured against a baseline in the same run.

`make bench` (or `python -m bench [ack|tick|metrics_calls|store]`) runs them, prints one table and exits 1
when a target is missed. What each benchmark measures, its baseline and its target: bench/README.md.
"""
