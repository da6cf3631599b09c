"""Kinesis Data Streams: the streaming job's sources and sinks (flink.py, PyFlink adapters), the
AWS API side through boto3 (client.py), the config's `kinesis` section and stream names
(settings.py), and the local Kinesis API server (local.py)."""
