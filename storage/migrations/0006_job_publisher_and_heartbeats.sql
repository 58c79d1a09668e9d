-- Issue #11 items 6 and 7: who may take a delivery, and leases judged without comparing clocks.
-- publisher: the publisher that must make a deliver job ('discord' for a story asked for in Discord,
-- 'offline' for a command-line story's storybook); a worker claims only the deliveries its own
-- publisher can make. NULL on every other kind of job: any worker may take those.
-- heartbeats: bumped by each claim and heartbeat. A reaper takes a lease back once this counter has
-- stood still for lease_s on the reaper's own monotonic clock, never by comparing its wall clock with
-- a time another process wrote.
-- lease_s: the lease its owner holds the job under (it beats every lease_s / 3), so a reaper whose
-- JOB_LEASE_S differs still gives the owner its full lease.
ALTER TABLE jobs ADD COLUMN publisher TEXT;
ALTER TABLE jobs ADD COLUMN heartbeats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_s REAL;
-- Deliveries queued before this migration get the publisher their story needs.
UPDATE jobs SET publisher = CASE
    WHEN (SELECT channel_id FROM stories WHERE stories.id = jobs.story_id) IS NULL THEN 'offline'
    ELSE 'discord' END
WHERE kind = 'deliver'
