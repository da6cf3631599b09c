"""Running the job somewhere: a standalone Flink cluster (cluster), the Managed Flink
application zip (package) and its deployment (deploy)."""
