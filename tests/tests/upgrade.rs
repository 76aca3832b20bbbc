//! Upgrades of the extension: `ALTER EXTENSION pgmi UPDATE` from every earlier release whose
//! script is installed (`pgmi-ext/sql/pgmi--A.sql`, kept when a release is made) must end
//! with exactly the objects a fresh `CREATE EXTENSION pgmi` makes. "Exactly" is read from
//! the catalog — every member object, its definition, columns, constraints, indexes,
//! comments and privileges — not from a list typed by hand, so an upgrade script that
//! forgets a change fails here.

use pgmi_tests::{deploy_ok_as, Kind, Project, TestDb};

/// One line per fact about the extension's objects, sorted. Names, not OIDs, so two
/// databases can be compared.
const DESCRIBE: &str = r#"
WITH member AS (
    SELECT d.classid, d.objid
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
    WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
      AND d.deptype = 'e' AND e.extname = 'pgmi'
), rel AS (
    SELECT objid AS oid FROM member WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass
)
SELECT line FROM (
    SELECT pg_catalog.format('member %s %s', o.type, o.identity) AS line
    FROM member m, LATERAL pg_catalog.pg_identify_object(m.classid, m.objid, 0) o
  UNION ALL
    SELECT pg_catalog.format('comment on %s %s: %s', o.type, o.identity, ds.description)
    FROM member m
    JOIN pg_catalog.pg_description ds ON ds.classoid = m.classid AND ds.objoid = m.objid,
    LATERAL pg_catalog.pg_identify_object(ds.classoid, ds.objoid, ds.objsubid) o
  UNION ALL
    SELECT pg_catalog.format('routine %s acl %s: %s', p.oid::pg_catalog.regprocedure,
                             p.proacl, pg_catalog.pg_get_functiondef(p.oid))
    FROM pg_catalog.pg_proc p
    JOIN member m ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND m.objid = p.oid
    WHERE p.prokind <> 'a'
  UNION ALL
    SELECT pg_catalog.format('relation %s kind %s persistence %s options %s acl %s',
                             c.oid::pg_catalog.regclass, c.relkind, c.relpersistence,
                             c.reloptions, c.relacl)
    FROM pg_catalog.pg_class c JOIN rel ON rel.oid = c.oid
  UNION ALL
    SELECT pg_catalog.format('column %s.%s position %s type %s not null %s default %s',
                             a.attrelid::pg_catalog.regclass, a.attname,
                             pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                             pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                             pg_catalog.pg_get_expr(ad.adbin, ad.adrelid))
    FROM pg_catalog.pg_attribute a
    JOIN rel ON rel.oid = a.attrelid
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT pg_catalog.format('view %s: %s', c.oid::pg_catalog.regclass, pg_catalog.pg_get_viewdef(c.oid))
    FROM pg_catalog.pg_class c JOIN rel ON rel.oid = c.oid
    WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog."char"[])
  UNION ALL
    SELECT pg_catalog.format('constraint %s on %s: %s', co.conname, co.conrelid::pg_catalog.regclass,
                             pg_catalog.pg_get_constraintdef(co.oid))
    FROM pg_catalog.pg_constraint co JOIN rel ON rel.oid = co.conrelid
  UNION ALL
    SELECT pg_catalog.format('index %s', pg_catalog.pg_get_indexdef(i.indexrelid))
    FROM pg_catalog.pg_index i JOIN rel ON rel.oid = i.indrelid
  UNION ALL
    SELECT pg_catalog.format('trigger %s', pg_catalog.pg_get_triggerdef(t.oid))
    FROM pg_catalog.pg_trigger t JOIN rel ON rel.oid = t.tgrelid
    WHERE NOT t.tgisinternal
  UNION ALL
    SELECT pg_catalog.format('type %s kind %s labels %s', t.oid::pg_catalog.regtype, t.typtype,
                             (SELECT pg_catalog.string_agg(en.enumlabel, ',' ORDER BY en.enumsortorder)
                              FROM pg_catalog.pg_enum en WHERE en.enumtypid = t.oid))
    FROM pg_catalog.pg_type t
    JOIN member m ON m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND m.objid = t.oid
  UNION ALL
    SELECT pg_catalog.format('extension %s version %s relocatable %s schema %s config %s',
                             e.extname, e.extversion, e.extrelocatable,
                             e.extnamespace::pg_catalog.regnamespace,
                             coalesce(e.extconfig::pg_catalog.regclass[]::pg_catalog.text, '{}'))
    FROM pg_catalog.pg_extension e WHERE e.extname = 'pgmi'
) described
ORDER BY line COLLATE "C"
"#;

fn describe(db: &TestDb) -> Vec<String> {
    db.client()
        .query(DESCRIBE, &[])
        .expect("describe the extension")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Lines only one side has, for a readable failure.
fn difference(expected: &[String], actual: &[String]) -> String {
    let missing = expected.iter().filter(|l| !actual.contains(l));
    let extra = actual.iter().filter(|l| !expected.contains(l));
    missing
        .map(|l| format!("- {l}"))
        .chain(extra.map(|l| format!("+ {l}")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_earlier_release_updates_to_exactly_a_fresh_install() {
    let fresh = TestDb::new("upgrade_fresh");
    let current = fresh
        .text("SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'pgmi'")
        .expect("default_version");
    let expected = describe(&fresh);
    // The description must see the objects, or every comparison would pass.
    assert!(
        expected
            .iter()
            .any(|l| l.starts_with("routine pgmi_load(bytea)"))
            && expected.iter().any(|l| l.starts_with("member procedure ")),
        "the description does not see the extension's objects:\n{}",
        expected.join("\n")
    );
    assert!(
        expected.contains(&format!(
            "extension pgmi version {current} relocatable f schema public config {{}}"
        )),
        "{expected:?}"
    );

    // Every installable earlier version that has an update path to this one.
    let earlier: Vec<String> = fresh
        .client()
        .query(
            "SELECT v.version FROM pg_catalog.pg_available_extension_versions v
             JOIN pg_catalog.pg_extension_update_paths('pgmi') p
               ON p.source = v.version AND p.target = $1 AND p.path IS NOT NULL
             WHERE v.name = 'pgmi' ORDER BY v.version",
            &[&current],
        )
        .expect("update paths")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        !earlier.is_empty(),
        "no earlier release of pgmi is installed with an update path to {current} \
         (pgmi-ext/sql/pgmi--A.sql and pgmi--A--{current}.sql)"
    );

    for version in &earlier {
        assert!(
            version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{version:?}"
        );
        let db = TestDb::empty(&format!("upgrade_from_{version}"));
        let mut client = db.client();
        client
            .batch_execute(&format!("CREATE EXTENSION pgmi VERSION '{version}'"))
            .unwrap_or_else(|e| panic!("CREATE EXTENSION pgmi VERSION '{version}': {e:?}"));
        let before = describe(&db);
        client
            .batch_execute("ALTER EXTENSION pgmi UPDATE")
            .unwrap_or_else(|e| panic!("ALTER EXTENSION pgmi UPDATE from {version}: {e:?}"));
        let after = describe(&db);
        assert!(
            before.contains(&format!(
                "extension pgmi version {version} relocatable f schema public config {{}}"
            )),
            "{before:?}"
        );
        assert_eq!(
            after,
            expected,
            "ALTER EXTENSION pgmi UPDATE from {version} does not give a fresh install's objects \
             (- only fresh, + only updated):\n{}",
            difference(&expected, &after)
        );
        drop(client);

        // And the updated extension deploys.
        let project = Project::with_deploy(
            "DO $$ BEGIN RAISE NOTICE 'files=%', (SELECT count(*) FROM pg_temp.pgmi_source_view \
             WHERE path LIKE '%schema/a.sql'); END $$;\n",
        )
        .file("schema/a.sql", "CREATE TABLE a (id int);\n");
        let run = deploy_ok_as(Kind::Extension, &project, &db.name, &[]);
        assert!(run.stderr.contains("files=1"), "{}", run.stderr);
    }
}
