CREATE TABLE demo.greeting (
    language text PRIMARY KEY,
    text     text NOT NULL
);
