-- Each mission data entry carries a version, so that writers can replace it only if no one
-- changed it since they read it (compare and swap). Entries written before count as version 1.
ALTER TABLE mission_data ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
