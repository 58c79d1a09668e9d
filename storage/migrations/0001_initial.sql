-- Stories, their scenes, one row per generated file, the durable job queue, and deliveries.
CREATE TABLE stories (
    id                    TEXT PRIMARY KEY,
    guild_id              INTEGER,
    channel_id            INTEGER,
    thread_id             INTEGER,
    owner_id              INTEGER,
    prompt                TEXT NOT NULL,
    title                 TEXT,
    style                 TEXT,
    bible                 TEXT,
    text_model            TEXT NOT NULL,
    image_model           TEXT NOT NULL,
    video_model           TEXT,
    video_mode            INTEGER NOT NULL DEFAULT 0,
    reference_path        TEXT,
    scene_count           INTEGER NOT NULL CHECK (scene_count BETWEEN 1 AND 10),
    status                TEXT NOT NULL,
    error                 TEXT,
    storyboard_message_id INTEGER,
    out_dir               TEXT,
    created_at            REAL NOT NULL,
    updated_at            REAL NOT NULL
);
CREATE INDEX stories_by_owner ON stories (guild_id, owner_id, created_at DESC);

CREATE TABLE scenes (
    id                    TEXT PRIMARY KEY,
    story_id              TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    idx                   INTEGER NOT NULL,
    text                  TEXT NOT NULL,
    image_status          TEXT NOT NULL DEFAULT 'pending',
    image_path            TEXT,
    image_model_requested TEXT,
    image_model_used      TEXT,
    image_error           TEXT,
    video_status          TEXT NOT NULL DEFAULT 'none',
    video_path            TEXT,
    video_url             TEXT,
    video_model_requested TEXT,
    video_model_used      TEXT,
    video_error           TEXT,
    image_message_id      INTEGER,
    video_message_id      INTEGER,
    updated_at            REAL NOT NULL,
    UNIQUE (story_id, idx)
);

CREATE TABLE media_assets (
    id                  TEXT PRIMARY KEY,
    story_id            TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    scene_id            TEXT NOT NULL REFERENCES scenes (id) ON DELETE CASCADE,
    kind                TEXT NOT NULL CHECK (kind IN ('image', 'video')),
    status              TEXT NOT NULL CHECK (status IN ('PENDING', 'GENERATING', 'COMPLETED', 'FAILED')),
    model_requested     TEXT NOT NULL,
    model_used          TEXT,
    fallback_occurred   INTEGER NOT NULL DEFAULT 0,
    generation_metadata TEXT NOT NULL DEFAULT '{}',
    path                TEXT,
    bytes               INTEGER,
    sha256              TEXT,
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL
);
CREATE INDEX media_assets_by_scene ON media_assets (scene_id, kind);

CREATE TABLE jobs (
    id                      TEXT PRIMARY KEY,
    kind                    TEXT NOT NULL,
    payload                 TEXT NOT NULL DEFAULT '{}',
    status                  TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    attempts                INTEGER NOT NULL DEFAULT 0,
    max_attempts            INTEGER NOT NULL DEFAULT 5,
    run_after               REAL NOT NULL,
    lease_owner             TEXT,
    lease_expires_at        REAL,
    idempotency_key         TEXT UNIQUE,
    remote_id               TEXT,
    last_error              TEXT,
    story_id                TEXT REFERENCES stories (id) ON DELETE CASCADE,
    user_id                 INTEGER,
    provider                TEXT,
    composition_settings    TEXT NOT NULL DEFAULT '{}',
    model_fallback_occurred INTEGER NOT NULL DEFAULT 0,
    generation_warnings     TEXT NOT NULL DEFAULT '[]',
    result                  TEXT,
    created_at              REAL NOT NULL,
    updated_at              REAL NOT NULL,
    finished_at             REAL
);
-- The claim query reads only this partial index: ready jobs in run_after order.
CREATE INDEX jobs_ready ON jobs (run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_by_story ON jobs (story_id, status);

-- One row per thing published, so a restart never publishes it twice.
CREATE TABLE deliveries (
    key        TEXT PRIMARY KEY,
    story_id   TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    target     TEXT NOT NULL,
    message_id TEXT,
    created_at REAL NOT NULL
);
