"""Knobs of the operations layer (log ingestion from S3, the DVC remote, GPU routing); no I/O here."""
