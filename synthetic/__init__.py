"""Synthetic inputs in AWS's formats, for the demos, the tests and the benchmarks: the writers of
S3 flow-log files, CloudWatch Logs subscription records and the changelog (formats), the estate
model and the demo's and tests' estate and traffic (estate), the benchmark estate at any size
(workload), a large estate's ownership for the state benchmarks (snapshot), the estate written to
Kinesis (kinesis, through producer, which writes flow-log files and changelog lines as Kinesis
records), and the streaming demo (demo)."""
