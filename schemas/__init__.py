"""Record schemas, declared once.

Every record that crosses a stage boundary or leaves the job is described here. Flink row types
(`schemas.flink`), JSON codecs (`schemas.codec`) and the test builders are derived from these
declarations, so a field added here reaches every stage.
"""
