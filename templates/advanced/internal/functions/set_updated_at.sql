/*
<pgmi-meta id="c572a797-21ce-4f15-9582-c1a157841b5c" idempotent="true">
  <description>Trigger function that stamps updated_at on every update.</description>
  <sortKeys>
    <key>030-internal/set_updated_at</key>
  </sortKeys>
</pgmi-meta>
*/
-- Idempotent: CREATE OR REPLACE runs on every deploy, so editing this file is how the
-- function is changed.
CREATE OR REPLACE FUNCTION internal.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
