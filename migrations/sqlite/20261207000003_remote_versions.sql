-- The version a remote secret's provider last reported (Vault KV v2
-- current_version, an AWS version id), when rotation detection is on.
-- Version metadata only; values are never stored for remote secrets.
ALTER TABLE secrets ADD COLUMN remote_version TEXT;
