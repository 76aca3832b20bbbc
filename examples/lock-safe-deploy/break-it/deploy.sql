-- BREAK-IT version of deploy.sql: the same as ../project/deploy.sql, plus one more tail
-- statement at the end that fails. Copy it over project/deploy.sql (keep the original!).
-- lock-safe-deploy: a deploy that never makes the application queue behind it for long.
--
--   HEAD (one transaction, up to the first COMMIT): schema changes under a bounded
--        lock_timeout. pgmi-upload --retries N runs the whole head again after a lock
--        timeout: it is one transaction, so a failed attempt left nothing behind.
--   TAIL (after COMMIT, each statement on its own, in autocommit): index builds with
--        CREATE INDEX CONCURRENTLY, which cannot run inside a transaction block.
BEGIN;

-- A bounded wait for every lock of the head. `--lock-timeout 500ms` (or lock_timeout in
-- pgmi.yaml) is the operator's choice and wins; when none was given, this project still
-- refuses to wait longer than 3 s. set_config(..., true) is SET LOCAL: it ends with the head.
DO $$
BEGIN
    IF current_setting('lock_timeout') = '0' THEN
        PERFORM set_config('lock_timeout', '3s', true);
    END IF;
    RAISE NOTICE 'head: lock_timeout is %', current_setting('lock_timeout');
END
$$;

CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The change of this release. ALTER TABLE takes an ACCESS EXCLUSIVE lock even when the
-- column exists already: this is the statement that waits when a long transaction is
-- using shop.orders, and that lock_timeout stops from waiting forever.
ALTER TABLE shop.orders ADD COLUMN IF NOT EXISTS note text;

-- A few demo rows when the table is new, so the indexes below have something to index.
INSERT INTO shop.orders (id, customer_id, created_at)
SELECT v.id, v.customer_id, v.created_at::timestamptz
  FROM (VALUES (1, 100, '2026-01-01'), (2, 100, '2026-01-02'), (3, 200, '2026-01-03'))
       AS v(id, customer_id, created_at)
 WHERE NOT EXISTS (SELECT 1 FROM shop.orders);

COMMIT;

-- TAIL. From here on, every statement runs and commits on its own; a failure stops the
-- deploy (exit 13) but keeps what the head and the earlier tail statements did.

-- The same bound for the tail, for the rest of the session, unless the operator set one.
SELECT set_config('lock_timeout', '3s', false) AS lock_timeout
 WHERE current_setting('lock_timeout') = '0';

-- A CREATE INDEX CONCURRENTLY that failed or was cancelled leaves an INVALID index behind.
-- "IF NOT EXISTS" would then skip it forever, so drop such a leftover first. (DROP INDEX
-- CONCURRENTLY cannot run in a DO block; a plain DROP INDEX needs a short exclusive lock,
-- bounded by lock_timeout, and --retries repeats this statement if it times out.)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indexrelid = pg_catalog.to_regclass('shop.orders_created_at_idx')
                  AND NOT i.indisvalid) THEN
        RAISE WARNING 'dropping the invalid index shop.orders_created_at_idx left by an earlier run';
        DROP INDEX shop.orders_created_at_idx;
    END IF;
END
$$;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at_idx ON shop.orders (created_at);

-- The extra tail step: "one order per customer". The data says otherwise (customer 100 has
-- two orders), so this fails with a unique violation (SQLSTATE 23505). Everything above has
-- already committed and stays; this build leaves an INVALID index behind, which the reaping
-- block below drops on the next run.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indexrelid = pg_catalog.to_regclass('shop.orders_one_per_customer')
                  AND NOT i.indisvalid) THEN
        RAISE WARNING 'dropping the invalid index shop.orders_one_per_customer left by an earlier run';
        DROP INDEX shop.orders_one_per_customer;
    END IF;
END
$$;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS orders_one_per_customer ON shop.orders (customer_id);
