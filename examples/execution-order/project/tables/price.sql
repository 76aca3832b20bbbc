/*
<pgmi-meta id="911772f7-35c0-43ad-8797-ac05d529a2c1" idempotent="true">
  <description>Prices. References shop.product, so its key puts it after product.sql.</description>
  <sortKeys>
    <key>20-tables/2-price</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE TABLE IF NOT EXISTS shop.price (
    product_id int PRIMARY KEY REFERENCES shop.product (id),
    amount     numeric(10, 2) NOT NULL CHECK (amount >= 0)
);
