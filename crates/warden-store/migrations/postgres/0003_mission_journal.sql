-- A mission's journal: what changed its state (decisions committed, outputs absorbed), in the
-- order the store took it. Each replica folds the events it has not seen into its own state;
-- a snapshot in mission_data ("state", with the sequence number it covers) lets a newcomer
-- start from there instead of the first event.
CREATE TABLE mission_journal (
    mission_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (mission_id, seq)
);

-- The last sequence number given out per mission. Appending takes this row's lock first, so
-- events of one mission become visible in sequence order.
CREATE TABLE mission_journal_head (
    mission_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
