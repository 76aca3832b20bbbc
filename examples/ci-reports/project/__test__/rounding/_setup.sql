-- Fixture for the rounding tests: cases where the third decimal is exactly 5.
CREATE TEMP TABLE rounding_case (net numeric, vat_rate numeric, half_up numeric, half_even numeric);
INSERT INTO rounding_case VALUES
    (1.125, 0, 1.13, 1.12),
    (2.345, 0, 2.35, 2.34),
    (0.005, 0, 0.01, 0.00);
