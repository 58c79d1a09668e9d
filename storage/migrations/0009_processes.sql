-- Issue #14 item 5: the processes serving this database (a gateway, workers on other machines), each
-- beating every few seconds, so /status shows who is alive and a gateway knows whether any worker
-- will render what it queues. A row whose beat stopped is a process that died or was cut off.
-- id: host:pid:random; role: all | gateway | worker; shards: the gateway's shard ids ("0-3 of 4") or NULL;
-- worker_slots: how many jobs it runs at once (0 for a gateway).
CREATE TABLE processes (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    shards       TEXT,
    worker_slots INTEGER NOT NULL DEFAULT 0,
    started_at   REAL NOT NULL,
    beat_at      REAL NOT NULL
);
CREATE INDEX processes_by_beat ON processes (beat_at)
