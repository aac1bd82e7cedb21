-- config/accounts.sql — the application's own table behind the example mapped entity
-- "account" of config/wbcache.yaml. wbcache does not create it (it is the application's);
-- deploy/local/services runs this file when PostgreSQL comes up, the way an application's
-- own migrations would. postgres.schema: create or migrate then adds only what wbcache
-- needs: the version column and the wb_tombstones table. A value is the whole row: a field
-- it leaves out writes NULL, so a NOT NULL column (email) needs its field in every value.
CREATE TABLE IF NOT EXISTS accounts (
    id         bigint PRIMARY KEY,
    email      text NOT NULL,
    name       text,
    balance    numeric(14, 2),
    active     boolean,
    created_at timestamptz
);
