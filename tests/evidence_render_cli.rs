//! `fleet-ceremony evidence render` on a finished demo ceremony: the new folder matches
//! the run's own evidence byte for byte, and nothing is overwritten.

use std::path::Path;

use assert_cmd::Command;

fn fleet_ceremony(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("fleet-ceremony").unwrap();
    command.current_dir(dir);
    command
}

fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs the demo in a new folder and returns that folder.
fn finished_demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fleet_ceremony(dir.path())
        .args(["demo", "--dir", "demo"])
        .assert()
        .success();
    dir
}

#[test]
fn render_from_runbook_matches_run() {
    let dir = finished_demo();
    let demo = dir.path().join("demo");
    let output = fleet_ceremony(&demo)
        .args(["evidence", "render", "runbook.yaml", "--out", "again"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    for page in ["index.md", "index.html", "evidence.json"] {
        assert!(
            stdout.contains(&format!("{page}: same as the run's own rendering")),
            "{stdout}"
        );
    }
    assert_eq!(
        read_dir_sorted(&demo.join("again")),
        read_dir_sorted(&demo.join("evidence/demo-fleet"))
    );

    // A second rendering into the same folder fails and leaves it as it was.
    let before = read_dir_sorted(&demo.join("again"));
    fleet_ceremony(&demo)
        .args(["evidence", "render", "runbook.yaml", "--out", "again"])
        .assert()
        .failure()
        .code(1);
    assert_eq!(read_dir_sorted(&demo.join("again")), before);

    // A work folder needs the trust file, because it does not name the parties.
    let output = fleet_ceremony(&demo)
        .args([
            "evidence",
            "render",
            "ceremony/demo-fleet",
            "--out",
            "from-work",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("hint: pass --trust"), "{stderr}");
    assert!(!demo.join("from-work").exists());

    // With the trust file the signatures verify and the folder is written.
    fleet_ceremony(&demo)
        .args([
            "evidence",
            "render",
            "ceremony/demo-fleet",
            "--out",
            "from-work",
        ])
        .args(["--trust", "keys-public/trust.yaml"])
        .assert()
        .success();
    assert!(demo.join("from-work/index.html").exists());
}

#[test]
fn render_with_own_templates_rejects_unknown_field() {
    let dir = finished_demo();
    let demo = dir.path().join("demo");
    let templates = demo.join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("index.md.hbs"),
        "# {{fleet.id}} {{fleet.owner}}\n",
    )
    .unwrap();
    std::fs::write(templates.join("index.html.hbs"), "<h1>{{fleet.id}}</h1>\n").unwrap();
    let output = fleet_ceremony(&demo)
        .args(["evidence", "render", "runbook.yaml", "--out", "own"])
        .args(["--templates", "templates"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("fleet.owner"), "{stderr}");
    assert!(!demo.join("own").exists());

    std::fs::write(templates.join("index.md.hbs"), "# {{fleet.id}}\n").unwrap();
    fleet_ceremony(&demo)
        .args(["evidence", "render", "runbook.yaml", "--out", "own"])
        .args(["--templates", "templates"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(demo.join("own/index.md")).unwrap(),
        "# demo-fleet\n"
    );
}
