-- Sees both fixtures: the customer (root) and its two orders (this directory).
DO $$
DECLARE
    s api.customer_summary;
BEGIN
    SELECT * INTO STRICT s FROM api.customer_summary WHERE email = 'fixture@example.test';
    IF s.order_count <> 2 OR s.order_total <> 12.50 THEN
        RAISE EXCEPTION 'expected 2 orders totalling 12.50, got % totalling %',
            s.order_count, s.order_total;
    END IF;
    IF app.customer_total(s.id) <> s.order_total THEN
        RAISE EXCEPTION 'app.customer_total disagrees with the view';
    END IF;
END
$$;
