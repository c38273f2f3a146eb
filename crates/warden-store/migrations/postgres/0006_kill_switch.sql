-- The replicas of Warden on this store: each registers at start and writes a heartbeat every
-- few seconds; one with a recent heartbeat is live, and a kill waits for its confirmation.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL
);

-- Every kill thrown (`warden kill`): its scope (`all`, `session:S`, `mission:ID`,
-- `agent:A`, `principal:P`), the person who threw it, why, and when.
CREATE TABLE kills (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    by_user TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);

-- Each replica's confirmation that a kill holds there (its calls of that scope stopped).
CREATE TABLE kill_acks (
    kill_id TEXT NOT NULL,
    replica_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (kill_id, replica_id)
);
