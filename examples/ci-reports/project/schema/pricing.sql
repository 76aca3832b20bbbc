-- Prices with VAT, rounded to the cent.
CREATE SCHEMA IF NOT EXISTS pricing;

CREATE OR REPLACE FUNCTION pricing.gross(p_net numeric, p_vat_rate numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT AS
$$ SELECT round(p_net * (1 + p_vat_rate), 2) $$;

CREATE OR REPLACE FUNCTION pricing.line_total(p_quantity int, p_unit_net numeric, p_vat_rate numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT AS
$$ SELECT pricing.gross(p_quantity * p_unit_net, p_vat_rate) $$;
