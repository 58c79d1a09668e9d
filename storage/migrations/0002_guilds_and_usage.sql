-- Per-server settings (/config) and per-user daily usage for quotas.
CREATE TABLE guild_config (
    guild_id          INTEGER PRIMARY KEY,
    routing           TEXT NOT NULL DEFAULT '{}',  -- {"image": {"primary_model": ..., "fallbacks": [...]}, ...}
    video_enabled     INTEGER NOT NULL DEFAULT 1,
    daily_image_limit INTEGER,                     -- per user per UTC day, NULL for no limit
    daily_video_limit INTEGER,
    alert_channel_id  INTEGER,
    updated_by        INTEGER,
    updated_at        REAL NOT NULL
);

-- Images and clips each user asked for in a server on one UTC day (day = 'YYYY-MM-DD').
CREATE TABLE usage (
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    day      TEXT NOT NULL,
    images   INTEGER NOT NULL DEFAULT 0 CHECK (images >= 0),
    videos   INTEGER NOT NULL DEFAULT 0 CHECK (videos >= 0),
    PRIMARY KEY (guild_id, user_id, day)
);

-- Per-user running-story limit: counts a user's unfinished stories on every /story new.
CREATE INDEX stories_running_by_owner ON stories (owner_id) WHERE status IN ('queued', 'writing', 'illustrating');
