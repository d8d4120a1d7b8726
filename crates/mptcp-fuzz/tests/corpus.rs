//! Replays every file of `fuzz/corpus/<target>/` through its target's entry, on stable
//! and in `cargo test`: the inputs libFuzzer kept (and every crash it found, added as a
//! file) protect the parsers against regressions without nightly. Also checks that the
//! corpus directories, the libFuzzer targets and [`mptcp_fuzz::TARGETS`] name the same
//! set.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mptcp_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn names_in(dir: &Path, strip: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(strip).map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn corpus_directories_and_fuzz_targets_match_the_target_list() {
    let mut expected: Vec<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
    expected.sort();
    assert_eq!(names_in(&fuzz_dir().join("corpus"), ""), expected);
    assert_eq!(names_in(&fuzz_dir().join("fuzz_targets"), ".rs"), expected);
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "fuzz/Cargo.toml has no [[bin]] {}",
            t.name
        );
        let source =
            fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{}.rs", t.name))).unwrap();
        assert!(
            source.contains(&format!("::{}(", t.name)),
            "fuzz_targets/{}.rs does not call its entry",
            t.name
        );
    }
}

#[test]
fn every_corpus_file_replays_without_breaking_an_invariant() {
    let start = Instant::now();
    let mut total = 0;
    for t in TARGETS {
        let dir = fuzz_dir().join("corpus").join(t.name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} is empty", dir.display());
        for f in &files {
            let data = fs::read(f).unwrap();
            if catch_unwind(AssertUnwindSafe(|| (t.run)(&data))).is_err() {
                panic!(
                    "{} breaks target {} (see the panic above)",
                    f.display(),
                    t.name
                );
            }
        }
        println!("{}: {} files", t.name, files.len());
        total += files.len();
    }
    println!("{total} files in {:?}", start.elapsed());
}
