-- Root fixture: runs before every test under __test__/ (also __test__/api/), rolled back
-- at the end like the tests.
INSERT INTO app.customer (email, name) VALUES ('fixture@example.test', 'Fixture Customer');
