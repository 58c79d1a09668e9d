-- Issue #14 item 3: a model's open breaker and its cooldown, shared by every process on the database, so
-- one worker's 429s protect the others. Each process publishes the holds it puts on a model and adopts
-- the others' (bot/health/holds.py); a hold only ever moves later, and ends by itself at `until`.
-- kind: 'breaker' (open until `until`, then one probe) or 'cooldown' (unusable until `until`; reason is
-- the error kind that benched it: auth, quota_exhausted, model_retired).
CREATE TABLE model_holds (
    model_key TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('breaker', 'cooldown')),
    until     REAL NOT NULL,
    reason    TEXT,
    PRIMARY KEY (model_key, kind)
)
