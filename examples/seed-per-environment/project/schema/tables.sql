-- Two tables filled from data/seed.json:
--   app.plan      reference data: the same in every environment;
--   app.app_user  people who can log in: test users in dev and staging, none in prod.
CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE IF NOT EXISTS app.plan (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    monthly_price numeric(8, 2) NOT NULL CHECK (monthly_price >= 0)
);

CREATE TABLE IF NOT EXISTS app.app_user (
    email     text PRIMARY KEY,
    name      text NOT NULL,
    plan_code text NOT NULL REFERENCES app.plan (code),
    seeded    boolean NOT NULL DEFAULT false  -- true: owned by the seed, not by a person
);
