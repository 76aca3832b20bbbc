-- Nested fixture: runs after ../_setup.sql (so the fixture customer exists), before the
-- tests of this directory.
INSERT INTO app.customer_order (customer_id, amount)
SELECT c.id, v.amount
  FROM app.customer c, (VALUES (10.00), (2.50)) AS v(amount)
 WHERE c.email = 'fixture@example.test';
