-- Migrations run once, in file name order. Never edit one that was deployed:
-- add the next number instead.
CREATE SCHEMA app;

CREATE TABLE app.customer (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE CHECK (email LIKE '%_@_%'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
