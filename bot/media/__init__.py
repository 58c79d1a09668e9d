"""Files: the store (atomic writes under uuid names), object storage behind it (MEDIA_URL), the probe that checks
them, fitting to an upload limit."""
