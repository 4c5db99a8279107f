"""Protocol decoders: plain functions and tiny classes over bytes that emit small typed records.

Decoders know nothing of clients or verdicts; they raise `DecodeError` (or return a record with an
error field) on malformed input and leave the reporting to the pipeline.
"""


class DecodeError(ValueError):
    """Malformed or truncated protocol data."""
