-- A requirement nobody implemented yet: every transfer costs the sender a 1.00 fee.
-- Copy this file into project/__test__/ and deploy: the test fails, so the deploy does.
DO $$
DECLARE
    v_alice numeric;
BEGIN
    PERFORM bank.transfer('alice', 'bob', 40.00);
    SELECT balance INTO v_alice FROM bank.account WHERE owner = 'alice';
    IF v_alice <> 59.00 THEN
        RAISE EXCEPTION 'no transfer fee charged: alice has %, expected 59.00', v_alice;
    END IF;
END
$$;
