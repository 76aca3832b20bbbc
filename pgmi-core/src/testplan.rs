//! The test plan (docs/testing.md, "The plan"): which fixture, test and teardown steps run,
//! in which order.
//!
//! Invariants:
//! * a directory takes part iff it, or a directory below it, holds a selected test
//!   (fixtures never count, and are never filtered);
//! * the walk is depth-first and pre-order; siblings (and roots) go in byte order of their
//!   full path, so the plan is the same under every database collation;
//! * on entry a directory contributes all its fixtures, then its selected tests, each group
//!   in byte order of the file name; on exit exactly one teardown step;
//! * ordinals are 1-based and consecutive.
//!
//! Which tests are selected is the caller's decision (the pattern is a PostgreSQL regular
//! expression, so the extension evaluates it in the server and passes the answer in).

use std::collections::HashMap;

/// A directory row of `_pgmi_test_directory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDirectory {
    pub path: String,
    pub parent_path: Option<String>,
    pub depth: i32,
}

/// A file row of `_pgmi_test_source`, plus whether the pattern selected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    pub path: String,
    pub directory: String,
    pub filename: String,
    pub is_fixture: bool,
    /// For tests: matched by the pattern (always true without one). Ignored for fixtures.
    pub selected: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepType {
    Fixture,
    Test,
    Teardown,
}

impl StepType {
    /// The `step_type` text of `pgmi_test_plan()`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Fixture => "fixture",
            StepType::Test => "test",
            StepType::Teardown => "teardown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    pub ordinal: i32,
    pub step_type: StepType,
    /// The fixture or test file; `None` for teardowns.
    pub script_path: Option<String>,
    pub directory: String,
    pub depth: i32,
}

/// Builds the plan. Files whose directory has no row are ignored (the loader never
/// produces them).
pub fn build(directories: &[PlanDirectory], files: &[PlanFile]) -> Vec<PlanStep> {
    let index: HashMap<&str, usize> = directories
        .iter()
        .enumerate()
        .map(|(i, d)| (d.path.as_str(), i))
        .collect();
    let parent_of = |i: usize| {
        directories[i]
            .parent_path
            .as_deref()
            .and_then(|p| index.get(p).copied())
    };

    // Mark every directory on the way up from each selected test as relevant.
    let mut relevant = vec![false; directories.len()];
    for file in files.iter().filter(|f| !f.is_fixture && f.selected) {
        let mut at = index.get(file.directory.as_str()).copied();
        while let Some(i) = at {
            if relevant[i] {
                break;
            }
            relevant[i] = true;
            at = parent_of(i);
        }
    }

    let mut children: Vec<Vec<usize>> = vec![Vec::new(); directories.len()];
    let mut roots = Vec::new();
    for i in (0..directories.len()).filter(|&i| relevant[i]) {
        match parent_of(i) {
            Some(p) if relevant[p] => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let by_path = |a: &usize, b: &usize| {
        directories[*a]
            .path
            .as_bytes()
            .cmp(directories[*b].path.as_bytes())
    };
    roots.sort_by(by_path);
    for list in &mut children {
        list.sort_by(by_path);
    }

    let mut own: Vec<(Vec<&PlanFile>, Vec<&PlanFile>)> =
        vec![(Vec::new(), Vec::new()); directories.len()];
    for file in files {
        if let Some(&i) = index.get(file.directory.as_str()) {
            if file.is_fixture {
                own[i].0.push(file);
            } else if file.selected {
                own[i].1.push(file);
            }
        }
    }
    for (fixtures, tests) in &mut own {
        fixtures.sort_by(|a, b| a.filename.as_bytes().cmp(b.filename.as_bytes()));
        tests.sort_by(|a, b| a.filename.as_bytes().cmp(b.filename.as_bytes()));
    }

    let mut plan = Vec::new();
    // Explicit stack instead of recursion: test trees may be deep.
    enum Visit {
        Enter(usize),
        Exit(usize),
    }
    let mut stack: Vec<Visit> = roots.iter().rev().map(|&r| Visit::Enter(r)).collect();
    while let Some(visit) = stack.pop() {
        match visit {
            Visit::Enter(i) => {
                let dir = &directories[i];
                let (fixtures, tests) = &own[i];
                for (file, step_type) in fixtures
                    .iter()
                    .map(|f| (f, StepType::Fixture))
                    .chain(tests.iter().map(|f| (f, StepType::Test)))
                {
                    plan.push(PlanStep {
                        ordinal: 0,
                        step_type,
                        script_path: Some(file.path.clone()),
                        directory: dir.path.clone(),
                        depth: dir.depth,
                    });
                }
                stack.push(Visit::Exit(i));
                stack.extend(children[i].iter().rev().map(|&c| Visit::Enter(c)));
            }
            Visit::Exit(i) => plan.push(PlanStep {
                ordinal: 0,
                step_type: StepType::Teardown,
                script_path: None,
                directory: directories[i].path.clone(),
                depth: directories[i].depth,
            }),
        }
    }
    for (n, step) in plan.iter_mut().enumerate() {
        step.ordinal = i32::try_from(n + 1).unwrap_or(i32::MAX);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str, parent: Option<&str>, depth: i32) -> PlanDirectory {
        PlanDirectory {
            path: path.into(),
            parent_path: parent.map(Into::into),
            depth,
        }
    }

    fn file(path: &str, selected: bool) -> PlanFile {
        let (directory, filename) = path.rsplit_once('/').expect("path has a directory");
        PlanFile {
            path: path.into(),
            directory: format!("{directory}/"),
            filename: filename.into(),
            is_fixture: filename.eq_ignore_ascii_case("_setup.sql")
                || filename.eq_ignore_ascii_case("_setup.psql"),
            selected,
        }
    }

    fn render(plan: &[PlanStep]) -> Vec<String> {
        plan.iter()
            .map(|s| {
                format!(
                    "{} {} {} {}",
                    s.ordinal,
                    s.step_type.as_str(),
                    s.script_path.as_deref().unwrap_or(&s.directory),
                    s.depth
                )
            })
            .collect()
    }

    fn example_tree(pattern: impl Fn(&str) -> bool) -> (Vec<PlanDirectory>, Vec<PlanFile>) {
        let dirs = vec![
            dir("./__test__/", None, 0),
            dir("./__test__/auth/", Some("./__test__/"), 1),
            dir("./__test__/auth/oauth/", Some("./__test__/auth/"), 2),
            dir("./__test__/billing/", Some("./__test__/"), 1),
        ];
        let files = [
            "./__test__/_setup.sql",
            "./__test__/test_basic.sql",
            "./__test__/auth/_setup.sql",
            "./__test__/auth/test_login.sql",
            "./__test__/auth/oauth/test_google.sql",
            "./__test__/billing/test_stripe.sql",
        ]
        .iter()
        .map(|p| file(p, pattern(p)))
        .collect();
        (dirs, files)
    }

    // Every step of a three-level tree with fixtures at two levels.
    #[test]
    fn full_plan_of_a_three_level_tree() {
        let (dirs, files) = example_tree(|_| true);
        assert_eq!(
            render(&build(&dirs, &files)),
            [
                "1 fixture ./__test__/_setup.sql 0",
                "2 test ./__test__/test_basic.sql 0",
                "3 fixture ./__test__/auth/_setup.sql 1",
                "4 test ./__test__/auth/test_login.sql 1",
                "5 test ./__test__/auth/oauth/test_google.sql 2",
                "6 teardown ./__test__/auth/oauth/ 2",
                "7 teardown ./__test__/auth/ 1",
                "8 test ./__test__/billing/test_stripe.sql 1",
                "9 teardown ./__test__/billing/ 1",
                "10 teardown ./__test__/ 0",
            ]
        );
    }

    // A filter keeps the fixtures of the selected tests' ancestors; unrelated directories go.
    #[test]
    fn filtered_plan_keeps_ancestor_fixtures() {
        let (dirs, files) = example_tree(|p| p.contains("oauth"));
        assert_eq!(
            render(&build(&dirs, &files)),
            [
                "1 fixture ./__test__/_setup.sql 0",
                "2 fixture ./__test__/auth/_setup.sql 1",
                "3 test ./__test__/auth/oauth/test_google.sql 2",
                "4 teardown ./__test__/auth/oauth/ 2",
                "5 teardown ./__test__/auth/ 1",
                "6 teardown ./__test__/ 0",
            ]
        );
    }

    // Byte order, not a linguistic collation.
    #[test]
    fn tests_in_byte_order() {
        let dirs = vec![dir("./__test__/", None, 0)];
        let files: Vec<_> = [
            "./__test__/testc.sql",
            "./__test__/test_a.sql",
            "./__test__/test-b.sql",
        ]
        .iter()
        .map(|p| file(p, true))
        .collect();
        assert_eq!(
            render(&build(&dirs, &files)),
            [
                "1 test ./__test__/test-b.sql 0",
                "2 test ./__test__/test_a.sql 0",
                "3 test ./__test__/testc.sql 0",
                "4 teardown ./__test__/ 0",
            ]
        );
    }

    #[test]
    fn no_selected_test_means_empty_plan() {
        let (dirs, files) = example_tree(|_| false);
        assert!(build(&dirs, &files).is_empty());
        let fixtures_only = vec![file("./__test__/_setup.sql", true)];
        assert!(build(&[dir("./__test__/", None, 0)], &fixtures_only).is_empty());
    }

    #[test]
    fn separate_trees_in_path_order() {
        let dirs = vec![dir("./b/__test__/", None, 0), dir("./a/__test__/", None, 0)];
        let files = vec![
            file("./b/__test__/t.sql", true),
            file("./a/__test__/t.sql", true),
        ];
        assert_eq!(
            render(&build(&dirs, &files)),
            [
                "1 test ./a/__test__/t.sql 0",
                "2 teardown ./a/__test__/ 0",
                "3 test ./b/__test__/t.sql 0",
                "4 teardown ./b/__test__/ 0"
            ]
        );
    }
}
