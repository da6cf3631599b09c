"""Looking at the job's outputs: DuckDB views and named questions (query), the HTML page
(report), the summary a run prints. Reads output folders only; never runs the job."""
