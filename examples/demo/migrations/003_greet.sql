/*
<pgmi-meta id="6f1d2c3b-9a4e-4f51-8c2d-0e7b5a9c1d23" idempotent="true">
  <description>Greets a visitor in their language and records the visit.</description>
</pgmi-meta>
*/
CREATE OR REPLACE FUNCTION demo.greet(p_language text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_text text;
BEGIN
    SELECT g.text INTO v_text FROM demo.greeting g WHERE g.language = p_language;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no greeting for language %', p_language USING ERRCODE = 'P0002';
    END IF;
    INSERT INTO demo.visit (language) VALUES (p_language);
    RETURN v_text;
END
$$;
