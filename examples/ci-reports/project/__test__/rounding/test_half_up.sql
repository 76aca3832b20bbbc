-- Half a cent rounds up (away from zero), as numeric round() does.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM rounding_case LOOP
        IF pricing.gross(c.net, c.vat_rate) <> c.half_up THEN
            RAISE EXCEPTION 'gross(%) should round half up to %, got %',
                c.net, c.half_up, pricing.gross(c.net, c.vat_rate);
        END IF;
    END LOOP;
END
$$;
