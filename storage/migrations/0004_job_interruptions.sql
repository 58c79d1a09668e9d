-- Runs cut short by a dead worker (SIGKILL, crash, lost lease) are counted apart from attempts, so
-- restarts do not use up the attempts meant for provider errors; a job interrupted too often is
-- still given up (it may be what kills the worker).
ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0
