//! Creates the session objects (`sql/session.sql`) and bulk-inserts a validated project.
//!
//! One INSERT per table and batch, fed by arrays through `unnest`, never one statement per
//! file: with 10,000 files a per-row INSERT costs ~10,000 executor start-ups. Text travels
//! as `bytea` and is turned into text by `convert_from(.., 'UTF8')`, which converts to the
//! database encoding (so a LATIN1 database stores the same characters) and re-verifies
//! the bytes on the way in.

use pgmi_core::project::Project;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

const SESSION_SQL: &str = include_str!("../../sql/session.sql");
const SESSION_DROP_SQL: &str = include_str!("../../sql/session_drop.sql");

/// Content bytes per INSERT batch: keeps each array argument far below PostgreSQL's 1 GB
/// value limit and bounds the extra copy a batch costs.
const BATCH_BYTES: usize = 64 << 20;

pub struct Summary {
    pub files: usize,
    pub sql_files: usize,
    pub test_files: usize,
    pub bytes: usize,
    pub parameters: usize,
}

pub fn create(project: &Project, parameters: &[(String, String)]) -> Summary {
    Spi::connect_mut(|client| {
        let exists = client
            .select(
                "SELECT pg_catalog.to_regclass('pg_temp._pgmi_source') IS NOT NULL",
                None,
                &[],
            )?
            .first()
            .get_one::<bool>()?
            .unwrap_or(false);
        if exists {
            client.update(SESSION_DROP_SQL, None, &[])?;
        }
        let schema = client
            .select(
                "SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e \
                   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
                  WHERE e.extname = 'pgmi'",
                None,
                &[],
            )?
            .first()
            .get_one::<String>()?
            .unwrap_or_else(|| "public".to_string());
        client.update(SESSION_SQL.replace("@extschema@", &schema).as_str(), None, &[])?;
        insert_sources(client, project)?;
        insert_metadata(client, project)?;
        insert_tests(client, project)?;
        insert_parameters(client, parameters)?;
        if project.files_loaded > 0 {
            client.update(
                "ANALYZE pg_temp._pgmi_source, pg_temp._pgmi_source_metadata, \
                 pg_temp._pgmi_test_directory, pg_temp._pgmi_test_source",
                None,
                &[],
            )?;
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e: pgrx::spi::Error| crate::errors::spi(&e));

    let bytes = project
        .sources
        .iter()
        .map(|s| s.content.len())
        .sum::<usize>()
        + project
            .test_sources
            .iter()
            .map(|t| t.content.len())
            .sum::<usize>();
    Summary {
        files: project.files_loaded,
        sql_files: project
            .sources
            .iter()
            .filter(|s| s.path.is_sql_file())
            .count(),
        test_files: project.test_sources.len(),
        bytes,
        parameters: parameters.len(),
    }
}

/// Splits `items` into runs whose `size` sums stay under [`BATCH_BYTES`].
fn batches<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        if i > start && bytes + size(item) > BATCH_BYTES {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size(item);
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

fn insert_sources(client: &mut SpiClient<'_>, project: &Project) -> Result<(), pgrx::spi::Error> {
    for batch in batches(&project.sources, |s| s.content.len()) {
        let path: Vec<&[u8]> = batch.iter().map(|s| s.path.path.as_bytes()).collect();
        let name: Vec<&[u8]> = batch.iter().map(|s| s.path.name.as_bytes()).collect();
        let directory: Vec<&[u8]> = batch.iter().map(|s| s.path.directory.as_bytes()).collect();
        let extension: Vec<&[u8]> = batch.iter().map(|s| s.path.extension.as_bytes()).collect();
        let depth: Vec<i32> = batch.iter().map(|s| s.path.depth).collect();
        let content: Vec<&[u8]> = batch.iter().map(|s| s.content.as_bytes()).collect();
        let checksum: Vec<&str> = batch.iter().map(|s| s.checksum.as_str()).collect();
        let pgmi_checksum: Vec<&str> = batch.iter().map(|s| s.pgmi_checksum.as_str()).collect();
        let is_sql: Vec<bool> = batch.iter().map(|s| s.path.is_sql_file()).collect();
        let parent: Vec<Option<&[u8]>> = batch
            .iter()
            .map(|s| s.path.parent_folder_name.as_deref().map(str::as_bytes))
            .collect();
        client.update(
            "INSERT INTO pg_temp._pgmi_source (path, name, directory, extension, depth, content, \
                 size_bytes, checksum, pgmi_checksum, path_parts, is_sql_file, is_test_file, \
                 parent_folder_name) \
             SELECT t.path, pg_catalog.convert_from(f.name, 'UTF8'), \
                    pg_catalog.convert_from(f.directory, 'UTF8'), \
                    pg_catalog.convert_from(f.extension, 'UTF8'), f.depth, t.content, \
                    pg_catalog.octet_length(t.content), f.checksum, f.pgmi_checksum, \
                    pg_catalog.string_to_array(t.path, '/'), f.is_sql, false, \
                    pg_catalog.convert_from(f.parent, 'UTF8') \
               FROM ROWS FROM (pg_catalog.unnest($1::bytea[]), pg_catalog.unnest($2::bytea[]), pg_catalog.unnest($3::bytea[]), pg_catalog.unnest($4::bytea[]), pg_catalog.unnest($5::int4[]), pg_catalog.unnest($6::bytea[]), pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::text[]), pg_catalog.unnest($9::bool[]), pg_catalog.unnest($10::bytea[])) \
                    AS f(path, name, directory, extension, depth, content, checksum, \
                         pgmi_checksum, is_sql, parent), \
                    LATERAL (SELECT pg_catalog.convert_from(f.path, 'UTF8') AS path, \
                                    pg_catalog.convert_from(f.content, 'UTF8') AS content) t",
            None,
            &[
                path.into(),
                name.into(),
                directory.into(),
                extension.into(),
                depth.into(),
                content.into(),
                checksum.into(),
                pgmi_checksum.into(),
                is_sql.into(),
                parent.into(),
            ],
        )?;
    }
    Ok(())
}

fn insert_metadata(client: &mut SpiClient<'_>, project: &Project) -> Result<(), pgrx::spi::Error> {
    let with_meta: Vec<_> = project
        .sources
        .iter()
        .filter_map(|s| s.metadata.as_ref().map(|m| (s, m)))
        .collect();
    if with_meta.is_empty() {
        return Ok(());
    }
    let path: Vec<&[u8]> = with_meta
        .iter()
        .map(|(s, _)| s.path.path.as_bytes())
        .collect();
    let id: Vec<String> = with_meta.iter().map(|(_, m)| m.id.to_string()).collect();
    let idempotent: Vec<bool> = with_meta.iter().map(|(_, m)| m.idempotent).collect();
    // Sort keys differ in number per file, so each file's list travels as a JSON array.
    let keys: Vec<Vec<u8>> = with_meta
        .iter()
        .map(|(_, m)| serde_json::to_vec(&m.sort_keys).unwrap_or_else(|_| b"[]".to_vec()))
        .collect();
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let description: Vec<&[u8]> = with_meta
        .iter()
        .map(|(_, m)| m.description.as_bytes())
        .collect();
    client.update(
        "INSERT INTO pg_temp._pgmi_source_metadata (path, id, idempotent, sort_keys, description) \
         SELECT pg_catalog.convert_from(m.path, 'UTF8'), m.id::uuid, m.idempotent, \
                ARRAY(SELECT k.key \
                        FROM pg_catalog.jsonb_array_elements_text( \
                                 pg_catalog.convert_from(m.keys, 'UTF8')::jsonb) \
                             WITH ORDINALITY AS k(key, n) \
                       ORDER BY k.n), \
                pg_catalog.convert_from(m.description, 'UTF8') \
           FROM ROWS FROM (pg_catalog.unnest($1::bytea[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::bool[]), pg_catalog.unnest($4::bytea[]), pg_catalog.unnest($5::bytea[])) \
                AS m(path, id, idempotent, keys, description)",
        None,
        &[path.into(), id.into(), idempotent.into(), keys.into(), description.into()],
    )?;
    Ok(())
}

fn insert_tests(client: &mut SpiClient<'_>, project: &Project) -> Result<(), pgrx::spi::Error> {
    if project.test_directories.is_empty() {
        return Ok(());
    }
    let dirs = &project.test_directories;
    let path: Vec<&[u8]> = dirs.iter().map(|d| d.path.as_bytes()).collect();
    let parent: Vec<Option<&[u8]>> = dirs
        .iter()
        .map(|d| d.parent_path.as_deref().map(str::as_bytes))
        .collect();
    let depth: Vec<i32> = dirs.iter().map(|d| d.depth).collect();
    client.update(
        "INSERT INTO pg_temp._pgmi_test_directory (path, parent_path, depth) \
         SELECT pg_catalog.convert_from(d.path, 'UTF8'), pg_catalog.convert_from(d.parent, 'UTF8'), \
                d.depth \
           FROM ROWS FROM (pg_catalog.unnest($1::bytea[]), pg_catalog.unnest($2::bytea[]), pg_catalog.unnest($3::int4[])) AS d(path, parent, depth)",
        None,
        &[path.into(), parent.into(), depth.into()],
    )?;
    for batch in batches(&project.test_sources, |t| t.content.len()) {
        let path: Vec<&[u8]> = batch.iter().map(|t| t.path.as_bytes()).collect();
        let directory: Vec<&[u8]> = batch.iter().map(|t| t.directory.as_bytes()).collect();
        let filename: Vec<&[u8]> = batch.iter().map(|t| t.filename.as_bytes()).collect();
        let content: Vec<&[u8]> = batch.iter().map(|t| t.content.as_bytes()).collect();
        let is_fixture: Vec<bool> = batch.iter().map(|t| t.is_fixture).collect();
        client.update(
            "INSERT INTO pg_temp._pgmi_test_source (path, directory, filename, content, is_fixture) \
             SELECT pg_catalog.convert_from(t.path, 'UTF8'), \
                    pg_catalog.convert_from(t.directory, 'UTF8'), \
                    pg_catalog.convert_from(t.filename, 'UTF8'), \
                    pg_catalog.convert_from(t.content, 'UTF8'), t.is_fixture \
               FROM ROWS FROM (pg_catalog.unnest($1::bytea[]), pg_catalog.unnest($2::bytea[]), pg_catalog.unnest($3::bytea[]), pg_catalog.unnest($4::bytea[]), pg_catalog.unnest($5::bool[])) AS t(path, directory, filename, content, is_fixture)",
            None,
            &[path.into(), directory.into(), filename.into(), content.into(), is_fixture.into()],
        )?;
    }
    Ok(())
}

/// Parameters go into `_pgmi_parameter` and become session-scoped `pgmi.<key>` settings
/// (`set_config(.., false)`): they survive anything deploy.sql rolls back, yet a failed
/// load reverts them with its transaction.
fn insert_parameters(
    client: &mut SpiClient<'_>,
    parameters: &[(String, String)],
) -> Result<(), pgrx::spi::Error> {
    if parameters.is_empty() {
        return Ok(());
    }
    let key: Vec<&str> = parameters.iter().map(|(k, _)| k.as_str()).collect();
    let value: Vec<&[u8]> = parameters.iter().map(|(_, v)| v.as_bytes()).collect();
    client.update(
        "INSERT INTO pg_temp._pgmi_parameter (key, value) \
         SELECT p.key, pg_catalog.convert_from(p.value, 'UTF8') \
           FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::bytea[])) AS p(key, value)",
        None,
        &[key.into(), value.into()],
    )?;
    client.update(
        "SELECT pg_catalog.set_config('pgmi.' || p.key, p.value, false) \
           FROM pg_temp._pgmi_parameter p",
        None,
        &[],
    )?;
    Ok(())
}
