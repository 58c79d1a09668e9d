-- Where a story's messages go, and what could not be posted (issue #10).
-- post_in_channel: the scenes go into the story's channel, not a thread (no thread permission, or the
-- thread was locked); delivery_note says why, in plain words, on the storyboard.
-- undelivered: why some of the story's deliveries are parked (a permission the bot lost), or null when
-- everything rendered was posted; parked_since bounds how long parked deliveries keep retrying.
ALTER TABLE stories ADD COLUMN post_in_channel INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stories ADD COLUMN delivery_note TEXT;
ALTER TABLE stories ADD COLUMN undelivered TEXT;
ALTER TABLE stories ADD COLUMN parked_since REAL
