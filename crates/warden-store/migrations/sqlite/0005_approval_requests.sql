-- Calls held for a person's approval. The request is bound to `digest` (the agent, the
-- principal, the mission chain, the canonical call and the policy version); `body` is its JSON
-- (reasons, exposure, holds, answers), `state` one of pending, approved, denied, used,
-- cancelled. `version` grows by one with every change: writers compare and swap it, so an
-- approval is used once.
CREATE TABLE approval_requests (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    agent TEXT NOT NULL,
    principal TEXT NOT NULL,
    mission_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);

CREATE INDEX approval_requests_digest ON approval_requests (digest, created_at_ms);
CREATE INDEX approval_requests_state ON approval_requests (state, created_at_ms);
