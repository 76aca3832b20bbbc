-- Fixture: runs before the tests of this directory (and of directories below it).
-- Like the tests, it is rolled back at the end.
INSERT INTO app.customer (email, name) VALUES ('fixture@example.test', 'Fixture Customer');
