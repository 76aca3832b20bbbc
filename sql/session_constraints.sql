-- Constraints and indexes pgmi_load() adds after its bulk inserts.
--
-- The CHECK constraints of _pgmi_source (their names are part of the contract: a row that
-- pgmi_register_file() cannot store fails naming one of them). pgmi_load() adds them after
-- its bulk insert, NOT VALID: the loader has already checked every row against exactly
-- these rules in Rust (pgmi-core path::check_source_row), and evaluating 23 expressions per
-- row again cost 150 ms of a 10,000-file load (measured). They are enforced for every row
-- inserted later, and a live test validates them over a loaded project.
ALTER TABLE pg_temp._pgmi_source
    ADD CONSTRAINT chk_path_format CHECK (path LIKE './%') NOT VALID,
    ADD CONSTRAINT chk_path_no_backslash CHECK (strpos(path, E'\\') = 0) NOT VALID,
    ADD CONSTRAINT chk_path_no_double_slash CHECK (strpos(path, '//') = 0) NOT VALID,
    ADD CONSTRAINT chk_name_format CHECK (name <> '' AND strpos(name, '/') = 0) NOT VALID,
    ADD CONSTRAINT chk_name_no_whitespace_only CHECK (name !~ '^\s+$') NOT VALID,
    ADD CONSTRAINT chk_directory_format CHECK (directory ~ '^\./(?:[^/]+/)*$') NOT VALID,
    ADD CONSTRAINT chk_directory_no_backslash CHECK (strpos(directory, E'\\') = 0) NOT VALID,
    ADD CONSTRAINT chk_extension_format CHECK (extension ~ '^(\.[a-zA-Z0-9]+)?$') NOT VALID,
    ADD CONSTRAINT chk_depth CHECK (depth >= 0) NOT VALID,
    ADD CONSTRAINT chk_depth_reasonable CHECK (depth <= 100) NOT VALID,
    ADD CONSTRAINT chk_size_bytes CHECK (size_bytes >= 0) NOT VALID,
    ADD CONSTRAINT chk_content_size_match CHECK (octet_length(content) = size_bytes) NOT VALID,
    ADD CONSTRAINT chk_checksum_format CHECK (checksum ~ '^[a-fA-F0-9]{32,64}$') NOT VALID,
    ADD CONSTRAINT chk_pgmi_checksum_format CHECK (pgmi_checksum ~ '^[a-fA-F0-9]{32,64}$') NOT VALID,
    ADD CONSTRAINT chk_path_parts_not_empty CHECK (cardinality(path_parts) > 0) NOT VALID,
    ADD CONSTRAINT chk_depth_path_parts CHECK (cardinality(path_parts) = depth + 2) NOT VALID,
    ADD CONSTRAINT chk_path_parts_no_empty_strings CHECK (NOT ('' = ANY (path_parts))) NOT VALID,
    ADD CONSTRAINT chk_path_parts_first_element CHECK (path_parts[1] = '.') NOT VALID,
    ADD CONSTRAINT chk_path_parts_last_element CHECK (path_parts[cardinality(path_parts)] = name) NOT VALID,
    ADD CONSTRAINT chk_parent_folder_depth CHECK ((parent_folder_name IS NULL) = (depth = 0)) NOT VALID,
    ADD CONSTRAINT chk_parent_folder_no_slash CHECK (strpos(parent_folder_name, '/') = 0) NOT VALID,
    ADD CONSTRAINT chk_path_directory_match CHECK (path = directory || name) NOT VALID,
    ADD CONSTRAINT chk_path_is_not_test CHECK (path !~ '/__tests?__/') NOT VALID;

-- Foreign keys, NOT VALID for the same reason (every metadata path is a loaded source and
-- every test's directory a loaded test directory, by construction in pgmi-core): checking
-- them row by row runs one lookup query per row (~25 ms for 2,500 metadata rows).
ALTER TABLE pg_temp._pgmi_source_metadata
    ADD CONSTRAINT _pgmi_source_metadata_path_fkey FOREIGN KEY (path)
        REFERENCES pg_temp._pgmi_source (path) NOT VALID;
ALTER TABLE pg_temp._pgmi_test_source
    ADD CONSTRAINT fk_test_source_directory FOREIGN KEY (directory)
        REFERENCES pg_temp._pgmi_test_directory (path) NOT VALID;

-- Built once over the loaded rows rather than updated per row.
CREATE INDEX ix_pgmi_source_metadata_sort_keys ON pg_temp._pgmi_source_metadata USING gin (sort_keys);
