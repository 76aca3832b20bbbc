-- VAT is applied to the line, not to each unit: 3 x 0.99 at 20 % is 3.56, not 3 x 1.19.
DO $$
BEGIN
    IF pricing.line_total(3, 0.99, 0.20) <> 3.56 THEN
        RAISE EXCEPTION 'line_total(3, 0.99, 20%%) should be 3.56, got %',
            pricing.line_total(3, 0.99, 0.20);
    END IF;
END
$$;
