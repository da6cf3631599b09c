"""Synthetic inputs in AWS's formats, for the demos, the tests and the benchmarks: an estate and
its traffic (estate), the files and records AWS writes (formats), the estate cut into Kinesis
deliveries (kinesis), and the streaming demo (demo)."""
