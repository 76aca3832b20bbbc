DO $$
BEGIN
    IF pricing.gross(100, 0.20) <> 120.00 THEN
        RAISE EXCEPTION 'gross(100, 20%%) should be 120.00, got %', pricing.gross(100, 0.20);
    END IF;
END
$$;
