"""The `flowdredge` command (cli): the top layer, wiring the job, the synthetic estate and the
output tools for users."""
