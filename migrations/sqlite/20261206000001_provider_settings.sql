-- Providers of every kind: the kind's own settings as one JSON object, and
-- the local secret holding the provider's credential (if its auth uses one)
-- as a column of its own, so that the references of a secret find it.
-- Vault's settings were columns; they become the JSON object, without the
-- Kubernetes token path, which is a server flag now.
ALTER TABLE providers ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE providers ADD COLUMN credential_secret TEXT;

UPDATE providers SET
    settings = json_object(
        'address', address,
        'namespace', namespace,
        'ca_pem', ca_pem,
        'auth', json_remove(json(auth), '$.jwt_path')
    ),
    credential_secret = COALESCE(
        json_extract(auth, '$.token_secret'),
        json_extract(auth, '$.secret_id_secret')
    );

ALTER TABLE providers DROP COLUMN address;
ALTER TABLE providers DROP COLUMN namespace;
ALTER TABLE providers DROP COLUMN ca_pem;
ALTER TABLE providers DROP COLUMN auth;

CREATE INDEX providers_credential ON providers (organization_id, credential_secret);
