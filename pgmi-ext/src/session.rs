//! Creates the session objects (`sql/session.sql`) and bulk-inserts a validated project.
//!
//! One INSERT per table (per run of ~1 MB for the sources, see `pipeline`), fed by arrays
//! through `unnest` in the select list, never one statement per file: with 10,000 files a
//! per-row INSERT costs ~10,000 executor start-ups.
//!
//! Text is already validated UTF-8 (pgmi-core). In a UTF8 database it goes in as `text[]`
//! unchanged; in any other database encoding it travels as `bytea[]` and
//! `convert_from(.., 'UTF8')` converts it, so a LATIN1 database stores the same characters.
//!
//! Measured on 10,000 files (21 MB, release build): the 23 CHECK constraints of
//! `_pgmi_source` cost 150 ms per load when evaluated row by row, so they are added after
//! the insert as NOT VALID (`sql/session_constraints.sql`; every row was checked against
//! the same rules in Rust by `project::build`).

use pgmi_core::project::{Project, SourceFile};

use crate::arrays::{ByteaArray, TextArray};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use pgrx::PgOid;

const SESSION_SQL: &str = include_str!("../../sql/session.sql");
const SESSION_EXTENSION_SQL: &str = include_str!("../../sql/session_extension.sql");
const SESSION_CONSTRAINTS_SQL: &str = include_str!("../../sql/session_constraints.sql");
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

/// How text columns travel to the server in this database (see the module docs).
#[derive(Clone, Copy)]
struct Text {
    utf8: bool,
}

impl Text {
    /// The array type of a text argument.
    fn array(self) -> &'static str {
        if self.utf8 {
            "text[]"
        } else {
            "bytea[]"
        }
    }

    /// The SQL expression turning unnested column `col` into text.
    fn column(self, col: &str) -> String {
        if self.utf8 {
            col.to_string()
        } else {
            format!("pg_catalog.convert_from({col}, 'UTF8')")
        }
    }

    fn values<'a>(self, values: Vec<&'a str>) -> DatumWithOid<'a> {
        let bytes: Vec<&[u8]> = values.into_iter().map(str::as_bytes).collect();
        if self.utf8 {
            TextArray::new(&bytes).into()
        } else {
            ByteaArray::new(&bytes).into()
        }
    }

    fn nullable<'a>(self, values: Vec<Option<&'a str>>) -> DatumWithOid<'a> {
        if self.utf8 {
            values.into()
        } else {
            values
                .into_iter()
                .map(|v| v.map(str::as_bytes))
                .collect::<Vec<Option<&[u8]>>>()
                .into()
        }
    }
}

/// Runs `f` with `client_min_messages` at `notice` at most, then puts it back: creating the
/// session objects and their indexes makes PostgreSQL send ~30 DEBUG1 lines ("building
/// index ...") that would bury `pgmi-upload --verbose` output. If `f` fails, the
/// transaction's end restores the setting (it is changed transaction-locally).
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let level = Spi::get_one::<String>("SELECT pg_catalog.current_setting('client_min_messages')")
        .unwrap_or_else(|e| crate::errors::spi(&e))
        .unwrap_or_default();
    let chatty = level.starts_with("debug") || level == "log";
    if chatty {
        Spi::run("SELECT pg_catalog.set_config('client_min_messages', 'notice', true)")
            .unwrap_or_else(|e| crate::errors::spi(&e));
    }
    let result = f();
    if chatty {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config('client_min_messages', $1, true)",
            &[level.as_str().into()],
        )
        .unwrap_or_else(|e| crate::errors::spi(&e));
    }
    result
}

/// Replaces the session objects: drops a previous load's, creates them afresh (empty).
pub fn create_objects() {
    quietly(create_objects_now);
}

fn create_objects_now() {
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
                concat!(
                    "SELECT pg_catalog.quote_ident(n.nspname) FROM ",
                    pgmi_core::extension_schema_from!()
                ),
                None,
                &[],
            )?
            .first()
            .get_one::<String>()?
            .unwrap_or_else(|| "public".to_string());
        // The functions' bodies are ours and tested; compiling each one now only to check
        // it is ~10% of creating the objects (measured), so it is skipped, and the caller's
        // setting is put back afterwards (they may be inside a transaction of their own).
        let checked = client
            .select(
                "SELECT pg_catalog.current_setting('check_function_bodies')",
                None,
                &[],
            )?
            .first()
            .get_one::<String>()?
            .unwrap_or_else(|| "on".to_string());
        client.update(
            "SELECT pg_catalog.set_config('check_function_bodies', 'off', true)",
            None,
            &[],
        )?;
        client.update(SESSION_SQL, None, &[])?;
        client.update(
            SESSION_EXTENSION_SQL
                .replace("@extschema@", &schema)
                .as_str(),
            None,
            &[],
        )?;
        client.update(
            "SELECT pg_catalog.set_config('check_function_bodies', $1, true)",
            None,
            &[checked.as_str().into()],
        )?;
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e: pgrx::spi::Error| crate::errors::spi(&e));
}

/// Bulk-inserts a validated project into the objects [`create_objects`] made: first the
/// sources, a run at a time ([`Filler::sources`], as the loader finishes them), then the
/// rest ([`Filler::finish`]).
pub struct Filler {
    text: Text,
    sources_sql: String,
    /// The INSERT of [`Filler::sources`], parsed once on first use instead of once per run
    /// (about 60 runs for 10,000 files); freed when the filler is dropped.
    sources_plan: Option<OwnedPreparedStatement>,
}

impl Filler {
    pub fn new() -> Filler {
        let utf8 = Spi::get_one::<bool>("SELECT pg_catalog.getdatabaseencoding() = 'UTF8'")
            .unwrap_or_else(|e| crate::errors::spi(&e))
            .unwrap_or(false);
        let text = Text { utf8 };
        Filler {
            text,
            sources_sql: sources_sql(text),
            sources_plan: None,
        }
    }

    /// Inserts a run of finished sources (checksums and metadata computed).
    pub fn sources(&mut self, sources: &[SourceFile]) {
        let text = self.text;
        let sql = &self.sources_sql;
        let plan = &mut self.sources_plan;
        Spi::connect_mut(|client| {
            let plan = match plan {
                Some(plan) => plan,
                None => {
                    let types = source_columns(text).map(|(ty, _)| PgOid::from(array_oid(ty)));
                    plan.insert(client.prepare_mut(sql.as_str(), &types)?.keep())
                }
            };
            insert_sources(client, text, plan, sources)
        })
        .unwrap_or_else(|e: pgrx::spi::Error| crate::errors::spi(&e));
    }

    /// Removes the sources inserted so far (the load starts over).
    pub fn clear_sources(&self) {
        Spi::run("TRUNCATE pg_temp._pgmi_source").unwrap_or_else(|e| crate::errors::spi(&e));
    }

    /// Inserts everything but the sources (which [`Filler::sources`] has inserted), adds the
    /// constraints, sets the parameters and analyzes.
    /// `project` holds only the sources with metadata (see `pipeline::Loaded`);
    /// `source_bytes` and `sql_files` count all of them.
    pub fn finish(
        self,
        project: &Project,
        source_bytes: usize,
        sql_files: usize,
        parameters: &[(String, String)],
    ) -> Summary {
        let text = self.text;
        quietly(|| {
            Spi::connect_mut(|client| insert_rest(client, text, project, parameters))
                .unwrap_or_else(|e: pgrx::spi::Error| crate::errors::spi(&e))
        });

        Summary {
            files: project.files_loaded,
            sql_files,
            test_files: project.test_sources.len(),
            bytes: source_bytes + project.content_bytes(),
            parameters: parameters.len(),
        }
    }
}

/// Everything after the sources: metadata, tests, the constraints, parameters, ANALYZE.
fn insert_rest(
    client: &mut SpiClient<'_>,
    text: Text,
    project: &Project,
    parameters: &[(String, String)],
) -> SpiResult<()> {
    insert_metadata(client, text, project)?;
    insert_tests(client, text, project)?;
    client.update(SESSION_CONSTRAINTS_SQL, None, &[])?;
    insert_parameters(client, text, parameters)?;
    if project.files_loaded > 0 {
        client.update(
            // Statistics only for the columns scripts filter and join on.
            "ANALYZE pg_temp._pgmi_source (path, directory, extension, depth, is_sql_file), \
                     pg_temp._pgmi_source_metadata (path, id), \
                     pg_temp._pgmi_test_directory, \
                     pg_temp._pgmi_test_source (path, directory, is_fixture)",
            None,
            &[],
        )?;
    }
    Ok(())
}

/// `(SELECT unnest($1::t1) AS c1, unnest($2::t2) AS c2, ...) AS alias`: the arrays, zipped
/// into rows. The set-returning calls sit in the select list, where PostgreSQL streams them
/// row by row (a ProjectSet node); in `FROM ROWS FROM (...)` it would first collect every
/// row into a tuplestore, which for 20 MB of content spilled to a temporary file and
/// doubled the insert time (measured).
fn zipped(alias: &str, columns: &[(&str, &str)]) -> String {
    let list: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (ty, name))| format!("pg_catalog.unnest(${}::{ty}) AS {name}", i + 1))
        .collect();
    format!("(SELECT {}) AS {alias}", list.join(", "))
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

/// The arguments of the sources INSERT, in order: array type and column name.
fn source_columns(text: Text) -> [(&'static str, &'static str); 10] {
    let a = text.array();
    [
        (a, "raw_path"),
        (a, "name"),
        (a, "directory"),
        (a, "extension"),
        ("int4[]", "depth"),
        (a, "raw_content"),
        ("text[]", "checksum"),
        ("text[]", "pgmi_checksum"),
        ("bool[]", "is_sql"),
        (a, "parent"),
    ]
}

/// The OID of an array type named in [`source_columns`].
fn array_oid(ty: &str) -> pg_sys::Oid {
    match ty {
        "text[]" => pg_sys::TEXTARRAYOID,
        "bytea[]" => pg_sys::BYTEAARRAYOID,
        "int4[]" => pg_sys::INT4ARRAYOID,
        "bool[]" => pg_sys::BOOLARRAYOID,
        other => unreachable!("no OID listed for {other}"),
    }
}

fn sources_sql(text: Text) -> String {
    let t = |col: &str| text.column(col);
    format!(
        "INSERT INTO pg_temp._pgmi_source (path, name, directory, extension, depth, content, \
             size_bytes, checksum, pgmi_checksum, path_parts, is_sql_file, is_test_file, \
             parent_folder_name) \
         SELECT f.path, {name}, {directory}, {extension}, f.depth, f.content, \
                pg_catalog.octet_length(f.content), f.checksum, f.pgmi_checksum, \
                pg_catalog.string_to_array(f.path, '/'), f.is_sql, false, \
                NULLIF({parent}, '') \
           FROM (SELECT {path} AS path, {content} AS content, r.* FROM {rows}) f",
        rows = zipped("r", &source_columns(text)),
        path = t("r.raw_path"),
        content = t("r.raw_content"),
        name = t("f.name"),
        directory = t("f.directory"),
        extension = t("f.extension"),
        parent = t("f.parent"),
    )
}

fn insert_sources(
    client: &mut SpiClient<'_>,
    text: Text,
    plan: &OwnedPreparedStatement,
    sources: &[SourceFile],
) -> SpiResult<()> {
    for batch in batches(sources, |s| s.content.len()) {
        let str_col = |f: fn(&SourceFile) -> &str| text.values(batch.iter().map(f).collect());
        client.update(
            plan,
            None,
            &[
                str_col(|s| &s.path.path),
                str_col(|s| &s.path.name),
                str_col(|s| &s.path.directory),
                str_col(|s| &s.path.extension),
                batch
                    .iter()
                    .map(|s| s.path.depth)
                    .collect::<Vec<i32>>()
                    .into(),
                str_col(|s| &s.content),
                TextArray::new(
                    &batch
                        .iter()
                        .map(|s| s.checksum.as_bytes())
                        .collect::<Vec<_>>(),
                )
                .into(),
                TextArray::new(
                    &batch
                        .iter()
                        .map(|s| s.pgmi_checksum.as_bytes())
                        .collect::<Vec<_>>(),
                )
                .into(),
                batch
                    .iter()
                    .map(|s| s.path.is_sql_file())
                    .collect::<Vec<bool>>()
                    .into(),
                // a folder name is never empty, so '' stands for NULL (depth 0)
                str_col(|s| s.path.parent_folder_name.as_deref().unwrap_or("")),
            ],
        )?;
    }
    Ok(())
}

fn insert_metadata(client: &mut SpiClient<'_>, text: Text, project: &Project) -> SpiResult<()> {
    let with_meta: Vec<_> = project
        .sources
        .iter()
        .filter_map(|s| s.metadata.as_ref().map(|m| (s, m)))
        .collect();
    if with_meta.is_empty() {
        return Ok(());
    }
    // Sort keys differ in number per file, so each file's list travels as a JSON array.
    let keys: Vec<String> = with_meta
        .iter()
        .map(|(_, m)| serde_json::to_string(&m.sort_keys).unwrap_or_else(|_| "[]".to_string()))
        .collect();
    let ids: Vec<String> = with_meta.iter().map(|(_, m)| m.id.to_string()).collect();
    let a = text.array();
    let sql = format!(
        "INSERT INTO pg_temp._pgmi_source_metadata (path, id, idempotent, sort_keys, description) \
         SELECT {path}, m.id::uuid, m.idempotent, \
                ARRAY(SELECT k.key \
                        FROM pg_catalog.jsonb_array_elements_text({keys}::jsonb) \
                             WITH ORDINALITY AS k(key, n) \
                       ORDER BY k.n), \
                {description} \
           FROM {rows}",
        rows = zipped(
            "m",
            &[
                (a, "path"),
                ("text[]", "id"),
                ("bool[]", "idempotent"),
                (a, "keys"),
                (a, "description"),
            ]
        ),
        path = text.column("m.path"),
        keys = text.column("m.keys"),
        description = text.column("m.description"),
    );
    client.update(
        sql.as_str(),
        None,
        &[
            text.values(
                with_meta
                    .iter()
                    .map(|(s, _)| s.path.path.as_str())
                    .collect(),
            ),
            ids.iter().map(String::as_str).collect::<Vec<&str>>().into(),
            with_meta
                .iter()
                .map(|(_, m)| m.idempotent)
                .collect::<Vec<bool>>()
                .into(),
            text.values(keys.iter().map(String::as_str).collect()),
            text.values(
                with_meta
                    .iter()
                    .map(|(_, m)| m.description.as_str())
                    .collect(),
            ),
        ],
    )?;
    Ok(())
}

fn insert_tests(client: &mut SpiClient<'_>, text: Text, project: &Project) -> SpiResult<()> {
    if project.test_directories.is_empty() {
        return Ok(());
    }
    let a = text.array();
    let dirs = &project.test_directories;
    client.update(
        format!(
            "INSERT INTO pg_temp._pgmi_test_directory (path, parent_path, depth) \
             SELECT {path}, {parent}, d.depth \
               FROM {rows}",
            rows = zipped("d", &[(a, "path"), (a, "parent"), ("int4[]", "depth")]),
            path = text.column("d.path"),
            parent = text.column("d.parent"),
        )
        .as_str(),
        None,
        &[
            text.values(dirs.iter().map(|d| d.path.as_str()).collect()),
            text.nullable(dirs.iter().map(|d| d.parent_path.as_deref()).collect()),
            dirs.iter().map(|d| d.depth).collect::<Vec<i32>>().into(),
        ],
    )?;
    let sql = format!(
        "INSERT INTO pg_temp._pgmi_test_source (path, directory, filename, content, is_fixture) \
         SELECT {path}, {directory}, {filename}, {content}, t.is_fixture \
           FROM {rows}",
        rows = zipped(
            "t",
            &[
                (a, "path"),
                (a, "directory"),
                (a, "filename"),
                (a, "content"),
                ("bool[]", "is_fixture"),
            ]
        ),
        path = text.column("t.path"),
        directory = text.column("t.directory"),
        filename = text.column("t.filename"),
        content = text.column("t.content"),
    );
    for batch in batches(&project.test_sources, |t| t.content.len()) {
        client.update(
            sql.as_str(),
            None,
            &[
                text.values(batch.iter().map(|t| t.path.as_str()).collect()),
                text.values(batch.iter().map(|t| t.directory.as_str()).collect()),
                text.values(batch.iter().map(|t| t.filename.as_str()).collect()),
                text.values(batch.iter().map(|t| t.content.as_str()).collect()),
                batch
                    .iter()
                    .map(|t| t.is_fixture)
                    .collect::<Vec<bool>>()
                    .into(),
            ],
        )?;
    }
    Ok(())
}

/// Parameters go into `_pgmi_parameter` and become session-scoped `pgmi.<key>` settings
/// (`set_config(.., false)`): they survive anything deploy.sql rolls back, yet a failed
/// load reverts them with its transaction.
fn insert_parameters(
    client: &mut SpiClient<'_>,
    text: Text,
    parameters: &[(String, String)],
) -> SpiResult<()> {
    if parameters.is_empty() {
        return Ok(());
    }
    client.update(
        format!(
            "INSERT INTO pg_temp._pgmi_parameter (key, value) \
             SELECT p.key, {value} \
               FROM {rows}",
            value = text.column("p.value"),
            rows = zipped("p", &[("text[]", "key"), (text.array(), "value")]),
        )
        .as_str(),
        None,
        &[
            parameters
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<&str>>()
                .into(),
            text.values(parameters.iter().map(|(_, v)| v.as_str()).collect()),
        ],
    )?;
    client.update(
        "SELECT pg_catalog.set_config('pgmi.' OPERATOR(pg_catalog.||) p.key, p.value, false) \
           FROM pg_temp._pgmi_parameter p",
        None,
        &[],
    )?;
    Ok(())
}
