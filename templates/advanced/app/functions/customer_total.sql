/*
<pgmi-meta id="4cee3b11-5b0e-4925-bbe9-d25e5767faba" idempotent="true">
  <description>What a customer has spent in all.</description>
  <sortKeys>
    <key>050-functions/customer_total</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE OR REPLACE FUNCTION app.customer_total(p_customer_id bigint) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(o.amount), 0)
      FROM app.customer_order o
     WHERE o.customer_id = p_customer_id
$$;
