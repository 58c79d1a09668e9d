"""Which model does the work: catalog, registry (aliases, retirements, availability), router, breaker."""
