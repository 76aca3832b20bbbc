-- Fixture: runs before the tests of this directory. Rolled back at the end, like them.
INSERT INTO bank.account (owner, balance) VALUES ('alice', 100.00), ('bob', 20.00);
