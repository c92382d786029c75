"""Benchmarks for taskfleet, run by hand or with ``make bench``; not part of the test suite.

``select_bench`` measures the load balancer's select+reserve (one Lua call) against a
plain Redis INCR in the same run, at 10 to 10,000 registered servers, on a private
redis-server it starts and stops itself. Results go to ``bench/results/`` (gitignored).
"""
