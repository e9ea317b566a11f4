//! The C API from C: `tests/c/api_test.c`, compiled with the system C compiler against
//! `libroomgraph.so` (this crate) and the committed header `ffi/include/roomgraph.h`, runs every entry point (answers, bad input, NULL arguments,
//! small buffers), under Valgrind when it is installed (`scripts/setup.sh` installs it): no invalid
//! access, no definite leak.

use std::path::{Path, PathBuf};
use std::process::Command;

use roomgraph_tests::auth_support::{ALICE, BOB, Room, member};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding `libroomgraph.so` of this build.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps dir");
    for dir in [deps.parent().expect("profile dir"), deps] {
        if dir.join("libroomgraph.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!("libroomgraph.so not found next to {}", exe.display());
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn every_entry_point_from_c() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sample = root().join("datasets/sample-room-v11.ndjson");
    let ids_path = root().join("datasets/sample-room-v11.ids");
    let lines: Vec<Value> = std::fs::read_to_string(&sample)
        .expect("sample")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let ids: Vec<String> = std::fs::read_to_string(&ids_path)
        .expect("ids")
        .lines()
        .map(str::to_owned)
        .collect();
    // Two views of the sample room: its first four (state) events, and the last event of each key.
    let mut latest = std::collections::BTreeMap::new();
    for (id, pdu) in ids.iter().zip(&lines) {
        if let Some(key) = pdu.get("state_key") {
            latest.insert((pdu["type"].to_string(), key.to_string()), id.clone());
        }
    }
    let sets = serde_json::json!([ids[..4], latest.values().collect::<Vec<_>>()]);
    let resolve = serde_json::json!({"room_version": "11", "events": lines, "state_sets": sets});
    let begin = serde_json::json!({"room_version": "11", "state_sets": sets});
    let supply = serde_json::json!({"events": lines});
    let mut room = Room::standard("11", "invite", "{}");
    room.send(member(ALICE, BOB, "invite"));
    let join = room.build(member(BOB, BOB, "join"));
    let auth = room.request(&join);

    let inputs = [
        sample.to_str().expect("utf-8").to_owned(),
        ids_path.to_str().expect("utf-8").to_owned(),
        write(tmp.path(), "resolve.json", &resolve.to_string()),
        write(tmp.path(), "begin.json", &begin.to_string()),
        write(tmp.path(), "supply.json", &supply.to_string()),
        write(tmp.path(), "auth.json", &auth),
        tmp.path().join("store").to_str().expect("utf-8").to_owned(),
    ];

    let lib = library_dir();
    let exe = tmp.path().join("api_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let built = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(root().join("ffi/include"))
        .arg(root().join("ffi/cdylib/tests/c/api_test.c"))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lroomgraph")
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("a C compiler (scripts/setup.sh installs one)");
    assert!(
        built.status.success(),
        "compiling api_test.c:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut run = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .arg(&exe);
        c
    } else {
        eprintln!("valgrind is not installed: running api_test without it");
        Command::new(&exe)
    };
    let out = run.args(&inputs).output().expect("api_test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "api_test (valgrind: {valgrind}) exited {:?}:\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(stdout.contains(" checks, 0 failed"), "{stdout}");
}

/// The Python ctypes example runs against this build's library.
#[test]
fn the_ctypes_example_runs() {
    let lib = library_dir().join("libroomgraph.so");
    let out = Command::new("python3")
        .arg(root().join("ffi/python/ctypes_example.py"))
        .arg(&lib)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ctypes_example.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("current state matches the resolution"),
        "{stdout}"
    );
    assert!(stdout.contains("refused: roomgraph error 5"), "{stdout}");
}
