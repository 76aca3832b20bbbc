-- Tests can live next to what they test: this directory has no fixture of its own, and
-- the fixtures of ./__test__/ do not apply here.
DO $$
DECLARE
    v_id      bigint;
    v_updated timestamptz;
BEGIN
    BEGIN
        INSERT INTO app.customer (email, name) VALUES ('not-an-email', 'Nobody');
        RAISE EXCEPTION 'an invalid email address was accepted';
    EXCEPTION WHEN check_violation THEN
        NULL;  -- rejected, as it should be
    END;

    INSERT INTO app.customer (email, name) VALUES ('trigger@example.test', 'T')
    RETURNING id INTO v_id;
    UPDATE app.customer SET name = 'T2', updated_at = '2000-01-01' WHERE id = v_id
    RETURNING updated_at INTO v_updated;
    IF v_updated <> now() THEN
        RAISE EXCEPTION 'the trigger should set updated_at, got %', v_updated;
    END IF;

    BEGIN
        INSERT INTO app.customer_order (customer_id, amount) VALUES (v_id, -1);
        RAISE EXCEPTION 'a negative amount was accepted';
    EXCEPTION WHEN check_violation THEN
        NULL;
    END;
END
$$;
