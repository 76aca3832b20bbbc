/*
<pgmi-meta id="3772fff1-d4c4-4b82-89af-fc7d2757ecea" idempotent="true">
  <description>The schemas: app (tables, logic), api (what readers see), internal (ledger, helpers).</description>
  <sortKeys>
    <key>010-schemas</key>
  </sortKeys>
</pgmi-meta>
*/
-- Runs on every deploy (idempotent="true"), as the owner role, so the owner owns them.
CREATE SCHEMA IF NOT EXISTS internal;
CREATE SCHEMA IF NOT EXISTS app;
CREATE SCHEMA IF NOT EXISTS api;

COMMENT ON SCHEMA internal IS 'Deploy ledger and helpers; only the owner role uses it.';
COMMENT ON SCHEMA app IS 'Tables and business logic; the writer role changes data here.';
COMMENT ON SCHEMA api IS 'Views for readers; the stable interface of this database.';
