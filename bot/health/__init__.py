"""Model health: availability probes, per-call metrics, states, alerts, and the status report."""
