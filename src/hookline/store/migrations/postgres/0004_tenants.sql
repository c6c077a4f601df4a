-- tenants for real: tenant-scoped API keys, named, revocable, with their last use

ALTER TABLE api_keys
    ADD COLUMN is_admin boolean NOT NULL DEFAULT true,
    ADD COLUMN name text NOT NULL DEFAULT '',
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN revoked_at timestamptz;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);
