-- Restart on rotation. A secret's version change queues a rotation in the
-- transaction that makes it; the replica that holds the rollout lock turns
-- each rotation into rollouts, one per opted-in workload that runs an older
-- version (deleting the rotation in the same transaction), and restarts them
-- no more often than the per-workload limit.
CREATE TABLE rotations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    secret_id       TEXT NOT NULL,
    secret_name     TEXT NOT NULL,
    version         BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX rotations_queue ON rotations (created_at);

CREATE TABLE rollouts (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    secret_id       TEXT NOT NULL,
    secret_name     TEXT NOT NULL,
    version         BIGINT NOT NULL,
    from_version    BIGINT,
    namespace       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    workload        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL,
    message         TEXT NOT NULL,
    requested_at    BIGINT NOT NULL,
    restarted_at    BIGINT
);
CREATE INDEX rollouts_secret ON rollouts (secret_id, requested_at);
CREATE INDEX rollouts_workload ON rollouts (namespace, kind, workload, restarted_at);
CREATE INDEX rollouts_state ON rollouts (state);
