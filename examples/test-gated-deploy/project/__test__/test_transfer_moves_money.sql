-- Money leaves one account and arrives in the other; the total stays the same.
DO $$
BEGIN
    PERFORM bank.transfer('alice', 'bob', 40.00);
    IF (SELECT balance FROM bank.account WHERE owner = 'alice') <> 60.00
       OR (SELECT balance FROM bank.account WHERE owner = 'bob') <> 60.00 THEN
        RAISE EXCEPTION 'expected alice 60.00 and bob 60.00 after the transfer';
    END IF;
END
$$;
