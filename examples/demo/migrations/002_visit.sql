CREATE TABLE demo.visit (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    language text NOT NULL REFERENCES demo.greeting (language),
    at       timestamptz NOT NULL DEFAULT now()
);
