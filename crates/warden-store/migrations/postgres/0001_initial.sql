-- Warden store, schema 1 (PostgreSQL).
CREATE TABLE audit_record (
    seq         BIGINT PRIMARY KEY,
    kind        TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    decision_id TEXT,
    mission_id  TEXT,
    principal   TEXT,
    agent       TEXT,
    tool        TEXT,
    outcome     TEXT,
    body        TEXT   NOT NULL,
    prev_hash   BYTEA  NOT NULL,
    hash        BYTEA  NOT NULL
);
CREATE INDEX audit_record_decision ON audit_record (decision_id) WHERE decision_id IS NOT NULL;

-- The chain's head: the last record's seq and hash. Every batch locks it (FOR UPDATE) so
-- replicas append one after the other to one chain.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA  NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_checkpoint (
    id        BIGSERIAL PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hash      BYTEA  NOT NULL,
    at_ms     BIGINT NOT NULL,
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
    mission_id TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    spent      BIGINT NOT NULL,
    lim        BIGINT NOT NULL,
    PRIMARY KEY (mission_id, name)
);

CREATE TABLE revocation (
    mission_id TEXT   PRIMARY KEY,
    reason     TEXT   NOT NULL,
    at_ms      BIGINT NOT NULL
);

CREATE TABLE breaker (
    key        TEXT   PRIMARY KEY,
    state      TEXT   NOT NULL,
    updated_ms BIGINT NOT NULL
);
