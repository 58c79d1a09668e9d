-- Issue #12 item 9: composition_settings was written as '{}' by every job and read by nothing.
ALTER TABLE jobs DROP COLUMN composition_settings;
