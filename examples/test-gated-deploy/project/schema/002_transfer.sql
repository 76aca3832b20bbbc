-- Moves money between two accounts in one statement. Refuses amounts that are not
-- positive and transfers that would overdraw the source account.
CREATE OR REPLACE FUNCTION bank.transfer(p_from text, p_to text, p_amount numeric)
RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_moved int;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'transfer amount must be positive, got %', p_amount
            USING ERRCODE = 'check_violation';
    END IF;

    UPDATE bank.account
       SET balance = balance + CASE WHEN owner = p_from THEN -p_amount ELSE p_amount END
     WHERE owner IN (p_from, p_to);
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    IF v_moved <> 2 THEN
        RAISE EXCEPTION 'transfer needs two existing accounts (% -> %)', p_from, p_to
            USING ERRCODE = 'no_data_found';
    END IF;
END
$fn$;
