-- A test is any SQL file here. It passes when it runs without an error.
DO $$
BEGIN
    BEGIN
        INSERT INTO app.customer (email, name) VALUES ('not-an-email', 'Nobody');
    EXCEPTION WHEN check_violation THEN
        RETURN;  -- rejected, as it should be
    END;
    RAISE EXCEPTION 'an invalid email address was accepted';
END
$$;
