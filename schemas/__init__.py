"""Record schemas, declared once.

Every record that crosses a stage boundary or leaves the job is described here. Flink row types
and SQL columns (`schemas.flink`), the output lines' keys (job.enriched, job.outputs,
job.security.table_lines), the query views and Athena tables (explore.query) are derived from
these declarations, so a field added here reaches every stage.
"""
