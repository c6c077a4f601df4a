-- tenants for real: tenant-scoped API keys, named, revocable, with their last use

ALTER TABLE api_keys ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 1;
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);
