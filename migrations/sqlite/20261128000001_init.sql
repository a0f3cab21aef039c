-- Initial schema. Times are Unix milliseconds. Empty strings stand for
-- "absent" in secret_references so that its unique key deduplicates rows.
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    organization_id TEXT REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL,
    token_hash      BLOB NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX tokens_organization ON tokens (organization_id);

CREATE TABLE providers (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    address         TEXT NOT NULL,
    namespace       TEXT,
    ca_pem          TEXT,
    auth            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE secrets (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    storage         TEXT NOT NULL,
    version         BIGINT NOT NULL,
    provider_id     TEXT REFERENCES providers(id),
    remote_path     TEXT,
    remote_key      TEXT,
    kek_id          TEXT,
    wrapped_dek     BLOB,
    ciphertext      BLOB,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);
CREATE INDEX secrets_provider ON secrets (provider_id);

CREATE TABLE image_pull_secrets (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    registry        TEXT NOT NULL,
    username        TEXT NOT NULL,
    password_secret TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE namespace_bindings (
    namespace       TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL
);

CREATE TABLE secret_references (
    id            TEXT PRIMARY KEY,
    secret_id     TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    pod           TEXT NOT NULL,
    owner_kind    TEXT NOT NULL,
    owner_name    TEXT NOT NULL,
    container     TEXT NOT NULL,
    env_var       TEXT NOT NULL,
    consumer      TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    UNIQUE (secret_id, kind, namespace, pod, owner_kind, owner_name, container, env_var, consumer)
);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,
    organization_id TEXT,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    target_kind     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    target_name     TEXT NOT NULL
);
CREATE INDEX audit_events_organization ON audit_events (organization_id, at);
