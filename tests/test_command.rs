//! `scripts/test.sh`, the one test command: it builds every target (one
//! `cargo test --all-targets --no-run`) but leaves
//! the benches out of the test run (they time the disk for tens of seconds and
//! assert nothing), and the README's Tests section says what it runs.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The command lines of `scripts/test.sh` that start with `cargo <verb>`.
fn cargo_lines<'a>(script: &'a str, verb: &str) -> Vec<&'a str> {
    let prefix = format!("cargo {verb} ");
    script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&prefix))
        .collect()
}

#[test]
fn the_test_command_builds_benches_but_does_not_run_them() {
    let script = read("scripts/test.sh");
    let (builds, tests): (Vec<&str>, Vec<&str>) = cargo_lines(&script, "test")
        .into_iter()
        .partition(|l| l.split_whitespace().any(|w| w == "--no-run"));
    assert!(
        builds.iter().any(|l| l.contains("--all-targets")),
        "benches must still compile: {builds:?}"
    );
    assert_eq!(tests.len(), 1, "one cargo test line: {tests:?}");
    let words: Vec<&str> = tests[0].split_whitespace().collect();
    for banned in ["--all-targets", "--benches", "--bench"] {
        assert!(
            !words.contains(&banned),
            "`{}` would run benches/ inside the tests",
            tests[0]
        );
    }
    for needed in ["--lib", "--bins", "--tests"] {
        assert!(words.contains(&needed), "`{}` lacks {needed}", tests[0]);
    }

    let readme = read("README.md");
    let shown = tests[0].split(" \"$@\"").next().unwrap_or(tests[0]);
    assert!(
        readme.contains(&format!("`{shown}`")),
        "README's Tests section must name `{shown}`"
    );
}
