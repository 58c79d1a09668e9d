"""Files: the store (atomic writes under uuid names), the probe that checks them, fitting to an upload limit."""
