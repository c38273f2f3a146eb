-- Missions a person granted (`warden mission grant`): who granted what to which agent, for
-- whom, until when. The token itself is never stored, only the hex SHA-256 of it.
CREATE TABLE mission_grants (
    mission_id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    agent TEXT NOT NULL,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    auth TEXT NOT NULL,
    granted_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    -- The narrowing made at the grant: canonical JSON text, or NULL for none.
    narrowing TEXT,
    token_digest TEXT NOT NULL,
    -- The mission this one narrows, for attenuated tokens.
    parent TEXT
);

-- Grants are listed per agent or per principal, newest first.
CREATE INDEX mission_grants_agent ON mission_grants (agent, granted_at_ms);
CREATE INDEX mission_grants_principal ON mission_grants (principal, granted_at_ms);
