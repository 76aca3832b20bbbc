/*
<pgmi-meta id="610ecd2e-e440-42eb-a90a-5c952adfd3a9" idempotent="true">
  <description>The catalog view. Its name sorts first; it needs both tables, so its key is last.</description>
  <sortKeys>
    <key>40-views/catalog</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE OR REPLACE VIEW shop.catalog AS
SELECT p.id, p.name, pr.amount
  FROM shop.product p
  LEFT JOIN shop.price pr ON pr.product_id = p.id;
