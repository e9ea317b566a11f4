//! roomgraph as Synapse's state resolver, proved with Synapse itself (Synapse 1.163.2, in a
//! virtualenv under the target directory, made once by `synapse_env.py`):
//!
//! - Synapse's own `tests/state/test_v2.py` and `test_v21.py` pass with the drop-in installed, and the
//!   drop-in resolved in them (`run_synapse_tests.py`);
//! - `install()` and `uninstall()` swap every binding of Synapse's functions (`check_install.py`);
//! - on the generated rooms of every room version (tests/support/rooms.rs), Synapse's resolver and the
//!   drop-in give the same state (`differential.py`; thousands of resolutions with
//!   `ROOMGRAPH_SYNAPSE_DIFF_LONG=1`).
//!
//! The module under test is this build's `libroomgraph_python.so`, copied beside the package's Python
//! sources as `roomgraph/_native.abi3.so`. Without the network the environment cannot be made and the
//! tests fail; `ROOMGRAPH_SKIP_SYNAPSE=1` skips them (and says so).

#[allow(dead_code)]
#[path = "support/rooms.rs"]
mod rooms;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Env {
    python: PathBuf,
    synapse_src: PathBuf,
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// This build's `libroomgraph_python.so` (in `target/debug/deps`, beside this test).
fn module() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    for dir in exe.ancestors().skip(1) {
        let lib = dir.join("libroomgraph_python.so");
        if lib.exists() {
            return lib;
        }
    }
    panic!("libroomgraph_python.so not found above {}", exe.display());
}

fn skipped(test: &str) -> bool {
    let skip = std::env::var_os("ROOMGRAPH_SKIP_SYNAPSE").is_some_and(|v| v == "1");
    if skip {
        eprintln!("{test}: SKIPPED (ROOMGRAPH_SKIP_SYNAPSE=1): Synapse's resolver not compared");
    }
    skip
}

/// The virtualenv and Synapse's sources, made once per target directory.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target/tmp is inside the target directory")
            .to_path_buf();
        let out = Command::new("python3")
            .arg(here().join("tests/synapse_env.py"))
            .arg(&target)
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "could not make Synapse's environment under {} (network to PyPI needed; \
             ROOMGRAPH_SKIP_SYNAPSE=1 skips these tests):\n{stdout}\n{}",
            target.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout.lines().last().unwrap_or_default();
        let doc: serde_json::Value = serde_json::from_str(line).expect("synapse_env.py's JSON");
        let path = |k: &str| PathBuf::from(doc[k].as_str().expect("a path"));
        Env {
            python: path("python"),
            synapse_src: path("src"),
        }
    })
}

/// A directory importing as the `roomgraph` package of this build.
fn package(dir: &Path) -> PathBuf {
    let pkg = dir.join("pkg");
    let dest = pkg.join("roomgraph");
    std::fs::create_dir_all(&dest).expect("package directory");
    let sources = here().join("python/roomgraph");
    for entry in std::fs::read_dir(&sources).expect("python/roomgraph") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), dest.join(entry.file_name())).expect("copy a source");
    }
    std::fs::copy(module(), dest.join("_native.abi3.so")).expect("copy the module");
    pkg
}

/// Runs a script of tests/ with the venv's Python, in `dir`; panics with its output unless it passes.
fn python(dir: &Path, script: &str, args: &[&Path]) -> String {
    let env = env();
    let out = Command::new(&env.python)
        .arg(here().join("tests").join(script))
        .arg(&env.synapse_src)
        .args(args)
        .current_dir(dir)
        .env("PYTHONPATH", package(dir))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("the venv's python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn synapse_own_state_tests_pass_with_the_drop_in() {
    if skipped("synapse_own_state_tests_pass_with_the_drop_in") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = python(
        dir.path(),
        "run_synapse_tests.py",
        &[
            Path::new("tests.state.test_v2"),
            Path::new("tests.state.test_v21"),
        ],
    );
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("Ran ")
                || l.starts_with("PASSED")
                || l.contains("drop-in")
                || l.contains("fallback:")
        })
        .collect();
    println!("{}", summary.join("\n"));
    assert!(out.contains("PASSED"), "{out}");
}

#[test]
fn install_and_uninstall_swap_every_binding() {
    if skipped("install_and_uninstall_swap_every_binding") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    println!("{}", python(dir.path(), "check_install.py", &[]));
}

#[test]
fn drop_in_agrees_with_synapse_on_every_room_version() {
    if skipped("drop_in_agrees_with_synapse_on_every_room_version") {
        return;
    }
    let long = std::env::var_os("ROOMGRAPH_SYNAPSE_DIFF_LONG").is_some_and(|v| v == "1");
    let (seeds, heavy) = if long { (60, 600) } else { (8, 0) };
    let dir = tempfile::tempdir().expect("temp dir");
    let rooms_dir = dir.path().join("rooms");
    rooms::write_all(&rooms_dir, &rooms::differential(seeds, heavy)).expect("write the rooms");
    let out = python(dir.path(), "differential.py", &[&rooms_dir]);
    println!("{out}");
}
