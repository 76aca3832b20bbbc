-- What a customer has spent in all.
CREATE FUNCTION app.customer_total(p_customer_id bigint) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(o.amount), 0)
      FROM app.customer_order o
     WHERE o.customer_id = p_customer_id
$$;
