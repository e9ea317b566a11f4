//! `roomgraph demo`: the README's main job on the embedded sample room.

use std::process::Command;

#[test]
fn demo_ingests_the_sample_room_and_prints_its_state() {
    let dir = std::env::temp_dir().join(format!("roomgraph-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_roomgraph"))
        .args(["demo", "--db"])
        .arg(&dir)
        .output()
        .expect("roomgraph runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("outcomes: accepted 13, rejected 0, soft-failed 0, pending 0"),
        "{text}"
    );
    // Carol was kicked by Bob in the last state event: her membership is the kick (line 12).
    let ids: Vec<&str> = include_str!("../../../../datasets/sample-room-v11.ids")
        .lines()
        .collect();
    assert!(
        text.contains(&format!("\"@carol:example.org\": \"{}\"", ids[11])),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "forward extremities of !sample:example.org: {}",
            ids[12]
        )),
        "{text}"
    );
    assert!(
        dir.join("CURRENT").exists()
            || std::fs::read_dir(&dir)
                .map(|d| d.count() > 0)
                .unwrap_or(false)
    );
    // A second run on the same store finds every event already there.
    let again = Command::new(env!("CARGO_BIN_EXE_roomgraph"))
        .args(["demo", "--db"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("duplicates 13"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    std::fs::remove_dir_all(&dir).ok();
}
