"""Where records come from and go to: files (replay, demo) and, later, Kinesis and AWS APIs."""
