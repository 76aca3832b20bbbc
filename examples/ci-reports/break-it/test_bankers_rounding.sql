-- Someone wants banker's rounding (half to even). The code rounds half up, so this test
-- fails. Copy it into project/__test__/rounding/ and look at the reports.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM rounding_case LOOP
        IF pricing.gross(c.net, c.vat_rate) <> c.half_even THEN
            RAISE EXCEPTION 'gross(%) should round half to even: expected %, got %',
                c.net, c.half_even, pricing.gross(c.net, c.vat_rate)
                USING DETAIL = 'banker''s rounding is not implemented';
        END IF;
    END LOOP;
END
$$;
