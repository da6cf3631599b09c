"""Where records come from and go to, the layer below the job: the Sources and Sinks the
pipeline takes (io) over files (files) and Kinesis (kinesis), the PyFlink plumbing they and the
job's adapters share (streams), s3:// URLs (s3), and the metadata publisher (publisher)."""
