-- Model health: one row per model, one row per provider call, 5-minute aggregates, open alerts.
CREATE TABLE model_health (
    model_key            TEXT PRIMARY KEY,
    state                TEXT NOT NULL CHECK (state IN ('up', 'degraded', 'down', 'retired', 'unconfigured')),
    available            INTEGER NOT NULL,
    last_success         REAL,
    last_failure         REAL,
    error_count          INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    breaker_state        TEXT NOT NULL DEFAULT 'closed',
    breaker_reopen_at    REAL,
    cooldown_until       REAL,
    last_check           REAL,
    probe_failed         INTEGER NOT NULL DEFAULT 0,
    retired              INTEGER NOT NULL DEFAULT 0,  -- a probe (404, shutdown date) or a call said so
    key_rejected         INTEGER NOT NULL DEFAULT 0,  -- a probe was refused the API key
    last_error           TEXT,                        -- plain words
    successor            TEXT,
    unavailable_since    REAL,
    updated_at           REAL NOT NULL
);

-- One row per provider call; rows older than METRICS_RETENTION_DAYS are pruned once aggregated.
CREATE TABLE model_calls (
    id         INTEGER PRIMARY KEY,
    model_key  TEXT NOT NULL,
    started_at REAL NOT NULL,
    latency_ms REAL NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'error')),
    error_kind TEXT,
    fallback   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX model_calls_by_time ON model_calls (started_at);

-- Calls per model per 5 minutes; latency_hist is {bin: count} over fixed log-spaced bins
-- (bot/health/histogram.py), so window percentiles come from here, not from raw rows.
CREATE TABLE model_call_buckets (
    model_key      TEXT NOT NULL,
    bucket_start   REAL NOT NULL,
    calls          INTEGER NOT NULL,
    successes      INTEGER NOT NULL,
    fallbacks      INTEGER NOT NULL,
    max_latency_ms REAL NOT NULL,
    latency_hist   TEXT NOT NULL,
    errors         TEXT NOT NULL,  -- {error kind: count}
    PRIMARY KEY (model_key, bucket_start)
);
CREATE INDEX model_call_buckets_by_time ON model_call_buckets (bucket_start);

-- Small named values: the id of the last model_calls row folded into the buckets.
CREATE TABLE health_meta (
    name  TEXT PRIMARY KEY,
    value REAL NOT NULL
);

-- Alerts that fired and have not recovered yet; a restart reads them and does not alert again.
CREATE TABLE health_alerts (
    alert_key TEXT PRIMARY KEY,
    message   TEXT NOT NULL,
    since     REAL NOT NULL
)
