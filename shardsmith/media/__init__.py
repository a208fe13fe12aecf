"""Media decoders: DICOM, PNG/JPEG rasters and label masks, turned into plain arrays.

Everything here is a library over bytes and files: no Dagster, no dataset knowledge. Failures
raise ``MediaError`` (or ``MaskError``) with a short machine ``reason`` so callers can quarantine.
"""
