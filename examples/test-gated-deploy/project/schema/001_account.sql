-- Accounts. A balance can never go below zero: the CHECK is the last line of defence.
CREATE SCHEMA IF NOT EXISTS bank;

CREATE TABLE IF NOT EXISTS bank.account (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner   text NOT NULL UNIQUE,
    balance numeric(12, 2) NOT NULL DEFAULT 0 CHECK (balance >= 0)
);
