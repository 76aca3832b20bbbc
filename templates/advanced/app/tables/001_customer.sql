/*
<pgmi-meta id="86e995c3-c436-42b6-8255-9a63ce04676f" idempotent="false">
  <description>Customers.</description>
  <sortKeys>
    <key>040-tables/001</key>
  </sortKeys>
</pgmi-meta>
*/
-- idempotent="false": runs once; the ledger remembers it by the id above. Change the table
-- later with a new file (new id, a later sort key such as 040-tables/003).
CREATE TABLE app.customer (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE CHECK (email LIKE '%_@_%'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER customer_set_updated_at
    BEFORE UPDATE ON app.customer
    FOR EACH ROW EXECUTE FUNCTION internal.set_updated_at();
