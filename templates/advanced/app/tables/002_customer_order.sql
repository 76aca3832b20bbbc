/*
<pgmi-meta id="ff351dae-81ed-4952-80d4-90ad0e2e9845" idempotent="false">
  <description>Orders of customers.</description>
  <sortKeys>
    <key>040-tables/002</key>
  </sortKeys>
</pgmi-meta>
*/
-- The index on placed_at is built CONCURRENTLY in deploy.sql's tail, not here: on a busy
-- table a plain CREATE INDEX would block writes for the whole build.
CREATE TABLE app.customer_order (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES app.customer (id),
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    placed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX customer_order_customer_id_idx ON app.customer_order (customer_id);
