/*
<pgmi-meta id="2224fa00-0b8c-4b67-a240-348d936e55bc" idempotent="true">
  <description>Privileges, converged on every deploy. Runs twice: before the objects exist (schema privileges and default privileges) and after them (grants on every object).</description>
  <sortKeys>
    <key>020-access</key>
    <key>090-access</key>
  </sortKeys>
</pgmi-meta>
*/
-- Two sort keys: this file runs in phase 020 (after the schemas, before any table: the
-- default privileges then cover every object created later) and again in phase 090 (after
-- everything: objects created before a grant was added here get it too). deploy.sql tells
-- the phase in current_setting('deploy.sort_key') should a file need it; this one does the
-- same both times.
--
-- "Converged": each schema's privileges are revoked from everybody this file manages and
-- granted again, inside the deploy transaction, so a grant made by hand is undone and the
-- result is the same on every deploy.
DO $$
DECLARE
    v_owner  name := pg_temp.app_role('owner');
    v_writer name := pg_temp.app_role('writer');
    v_reader name := pg_temp.app_role('reader');
BEGIN
    -- schemas
    EXECUTE format('REVOKE ALL ON SCHEMA app, api, internal FROM PUBLIC, %I, %I',
                   v_writer, v_reader);
    EXECUTE format('GRANT USAGE ON SCHEMA api TO %I', v_reader);
    EXECUTE format('GRANT USAGE ON SCHEMA app TO %I', v_writer);

    -- objects that exist now
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA app, api, internal FROM PUBLIC, %I, %I',
                   v_writer, v_reader);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA app, internal FROM PUBLIC, %I, %I',
                   v_writer, v_reader);
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA app, api, internal FROM PUBLIC, %I, %I',
                   v_writer, v_reader);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA api TO %I', v_reader);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO %I',
                   v_writer);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA app TO %I', v_writer);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA app TO %I', v_writer);

    -- objects the owner creates later
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA api GRANT SELECT ON TABLES TO %I',
                   v_owner, v_reader);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA app
                        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', v_owner, v_writer);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA app GRANT USAGE ON SEQUENCES TO %I',
                   v_owner, v_writer);
END
$$;
