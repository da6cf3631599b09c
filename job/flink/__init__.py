"""Thin PyFlink adapters around the pure-Python core (job.parse, job.attribute, ...)."""
