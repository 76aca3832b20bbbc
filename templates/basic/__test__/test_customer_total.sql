-- Uses the customer from _setup.sql.
DO $$
DECLARE
    v_id    bigint;
    v_total numeric;
BEGIN
    SELECT c.id INTO STRICT v_id FROM app.customer c WHERE c.email = 'fixture@example.test';
    IF app.customer_total(v_id) <> 0 THEN
        RAISE EXCEPTION 'a customer without orders should total 0';
    END IF;

    INSERT INTO app.customer_order (customer_id, amount) VALUES (v_id, 10.00), (v_id, 2.50);
    v_total := app.customer_total(v_id);
    IF v_total <> 12.50 THEN
        RAISE EXCEPTION 'customer_total: expected 12.50, got %', v_total;
    END IF;
END
$$;
