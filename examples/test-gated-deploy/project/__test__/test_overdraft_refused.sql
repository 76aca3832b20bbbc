-- bob has 20.00: sending 50.00 must fail, and leave both balances as they were.
DO $$
BEGIN
    BEGIN
        PERFORM bank.transfer('bob', 'alice', 50.00);
    EXCEPTION WHEN check_violation THEN
        IF (SELECT balance FROM bank.account WHERE owner = 'bob') <> 20.00 THEN
            RAISE EXCEPTION 'a refused transfer changed a balance';
        END IF;
        RETURN;
    END;
    RAISE EXCEPTION 'an overdraft was accepted';
END
$$;
