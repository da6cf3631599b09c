"""flowdredge: VPC Flow Logs attributed to their owners at the time of the flow."""
