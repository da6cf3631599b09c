"""Synthetic inputs in AWS's formats, for the demos, the tests and the benchmarks: an estate and
its traffic written as S3 flow-log files, CloudWatch Logs subscription records and the
changelog (estate), the estate written to Kinesis (kinesis), and the streaming demo (demo)."""
