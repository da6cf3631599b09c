"""The stream job: the pure-Python core (parse, ownership, attribute, aggregate, security, ...),
its Flink adapters (job.flink) and its entry points on a cluster (submit) and Managed Flink
(job.flink.managed)."""
