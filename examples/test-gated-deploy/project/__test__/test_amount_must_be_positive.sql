-- A negative amount would be a transfer in the other direction: refused.
DO $$
BEGIN
    BEGIN
        PERFORM bank.transfer('alice', 'bob', -5.00);
    EXCEPTION WHEN check_violation THEN
        RETURN;
    END;
    RAISE EXCEPTION 'a negative amount was accepted';
END
$$;
