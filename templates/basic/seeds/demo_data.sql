-- Demo data for development and staging (deploy.sql skips it when env=production).
-- Runs on every deploy: it inserts only what is missing, by natural key, so a second
-- deploy changes nothing (not even an identity sequence).
INSERT INTO app.customer (email, name)
SELECT v.email, v.name
  FROM (VALUES ('ada@example.com', 'Ada'),
               ('grace@example.com', 'Grace')) AS v(email, name)
 WHERE NOT EXISTS (SELECT 1 FROM app.customer c WHERE c.email = v.email);

INSERT INTO app.customer_order (customer_id, amount)
SELECT c.id, 42.00
  FROM app.customer c
 WHERE c.email = 'ada@example.com'
   AND NOT EXISTS (SELECT 1 FROM app.customer_order o WHERE o.customer_id = c.id);
