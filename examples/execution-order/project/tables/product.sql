/*
<pgmi-meta id="7517c95d-e53b-43af-887d-cb4935a2528d" idempotent="true">
  <description>Products. Sorts after price.sql by name, but must run before it.</description>
  <sortKeys>
    <key>20-tables/1-product</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE TABLE IF NOT EXISTS shop.product (
    id   int PRIMARY KEY,
    name text NOT NULL
);
