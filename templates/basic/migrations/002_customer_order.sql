CREATE TABLE app.customer_order (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES app.customer (id),
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    placed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX customer_order_customer_id_idx ON app.customer_order (customer_id);
