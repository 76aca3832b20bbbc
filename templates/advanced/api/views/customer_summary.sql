/*
<pgmi-meta id="6c6768ca-c6b7-49ea-8d54-6b4c64e96a90" idempotent="true">
  <description>One row per customer with the number and total of their orders.</description>
  <sortKeys>
    <key>060-api/customer_summary</key>
  </sortKeys>
</pgmi-meta>
*/
-- Readers see this view, never app's tables: the view runs with its owner's privileges.
-- CREATE OR REPLACE VIEW may only add columns at the end; to change more, DROP and CREATE
-- it here (the grants file runs after it and grants it again).
CREATE OR REPLACE VIEW api.customer_summary AS
SELECT c.id,
       c.email,
       c.name,
       count(o.id)                   AS order_count,
       COALESCE(sum(o.amount), 0)    AS order_total
  FROM app.customer c
  LEFT JOIN app.customer_order o ON o.customer_id = c.id
 GROUP BY c.id, c.email, c.name;
