/*
<pgmi-meta id="453c10f3-441d-43c0-8c9e-d8d4824e2493" idempotent="true">
  <description>Discounts. Its key was copied from price.sql and not changed: a clash.</description>
  <sortKeys>
    <key>20-tables/2-price</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE TABLE IF NOT EXISTS shop.discount (
    product_id int PRIMARY KEY REFERENCES shop.product (id),
    percent    int NOT NULL CHECK (percent BETWEEN 1 AND 90)
);
