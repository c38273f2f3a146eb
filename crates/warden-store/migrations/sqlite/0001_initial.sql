-- Warden store, schema 1 (SQLite).
CREATE TABLE audit_record (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    decision_id TEXT,
    mission_id  TEXT,
    principal   TEXT,
    agent       TEXT,
    tool        TEXT,
    outcome     TEXT,
    body        TEXT    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL
);
CREATE INDEX audit_record_decision ON audit_record (decision_id) WHERE decision_id IS NOT NULL;

-- The chain's head: the last record's seq and hash. Every batch reads and moves it in its
-- transaction.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_checkpoint (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    seq       INTEGER NOT NULL,
    hash      BLOB    NOT NULL,
    at_ms     INTEGER NOT NULL,
    key_id    TEXT,
    signature TEXT
);

CREATE TABLE mission_taint (
    mission_id TEXT NOT NULL,
    label      TEXT NOT NULL,
    sources    TEXT NOT NULL,
    PRIMARY KEY (mission_id, label)
);

CREATE TABLE mission_data (
    mission_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (mission_id, key)
);

CREATE TABLE mission_budget (
    mission_id TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    spent      INTEGER NOT NULL,
    lim        INTEGER NOT NULL,
    PRIMARY KEY (mission_id, name)
);

CREATE TABLE revocation (
    mission_id TEXT    PRIMARY KEY,
    reason     TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
);

CREATE TABLE breaker (
    key        TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
);
