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
    for line in &tests {
        let words: Vec<&str> = line.split_whitespace().collect();
        for banned in ["--all-targets", "--benches", "--bench"] {
            assert!(
                !words.contains(&banned),
                "`{line}` would run benches/ inside the tests"
            );
        }
    }
    // One default run (no target flags given): the library, binaries, tests
    // and examples; the other line runs only the targets the caller named.
    let defaults: Vec<&str> = tests
        .iter()
        .copied()
        .filter(|l| l.split_whitespace().any(|w| w == "--lib"))
        .collect();
    assert_eq!(defaults.len(), 1, "one default cargo test line: {tests:?}");
    let default = defaults[0];
    let words: Vec<&str> = default.split_whitespace().collect();
    for needed in ["--lib", "--bins", "--tests"] {
        assert!(words.contains(&needed), "`{default}` lacks {needed}");
    }
    for line in tests.iter().filter(|l| **l != default) {
        assert!(
            line.starts_with("cargo test \"$@\""),
            "`{line}`: only the caller's own targets may run besides the default"
        );
    }

    let readme = read("README.md");
    let shown = default.split(" \"$@\"").next().unwrap_or(default);
    assert!(
        readme.contains(&format!("`{shown}`")),
        "README's Tests section must name `{shown}`"
    );
}
