-- A secret's namespace fence: the namespace names and `*` globs whose pods
-- may use it, comma-separated; empty lets every namespace bound to the
-- organization use it.
ALTER TABLE secrets ADD COLUMN allowed_namespaces TEXT NOT NULL DEFAULT '';
