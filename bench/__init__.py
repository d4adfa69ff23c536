"""`python -m bench` (`make bench`): what a sync costs, how fast it is, how it grows.

Runs the suite as real processes against the simulators (with realistic latency) and the
real RabbitMQ, prints one table and writes it into BENCHMARKS.md. See `python -m bench -h`.
"""
