//! Golden files of the evidence for a ceremony with fixed keys, texts and times.
//!
//! The files in tests/data/evidence/golden/ are the expected output, byte for byte. After
//! an intended change to the templates or the evidence data, rewrite them with
//! `UPDATE_GOLDEN=1 cargo test --test evidence_golden` and review the diff before
//! committing it.

mod evidence_fixture;

use std::path::PathBuf;

use evidence_fixture::{CeremonyText, inputs};
use fleet_ceremony::ceremony::render_evidence;
use fleet_ceremony::evidence::Templates;

/// Environment variable that makes the test rewrite the golden files instead of comparing.
const UPDATE_GOLDEN: &str = "UPDATE_GOLDEN";

/// The rendered files compared against golden copies.
const GOLDEN_FILES: [&str; 4] = ["index.md", "index.html", "evidence.json", "diagram.svg"];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/evidence/golden")
}

#[test]
fn demo_evidence_matches_golden_files() {
    let files = render_evidence(&inputs(&CeremonyText::demo()), &Templates::builtin()).unwrap();
    let update = std::env::var_os(UPDATE_GOLDEN).is_some_and(|value| value == "1");
    if update {
        std::fs::create_dir_all(golden_dir()).unwrap();
    }
    for name in GOLDEN_FILES {
        let rendered = files.get(name).unwrap();
        let path = golden_dir().join(name);
        if update {
            std::fs::write(&path, rendered).unwrap();
            continue;
        }
        let expected = std::fs::read(&path).unwrap_or_else(|error| {
            panic!(
                "cannot read {}: {error}; run with {UPDATE_GOLDEN}=1",
                path.display()
            )
        });
        assert!(
            rendered == expected.as_slice(),
            "{name} differs from {}; if the change is intended, run with {UPDATE_GOLDEN}=1 and review the diff",
            path.display()
        );
    }
}

#[test]
fn rendering_twice_gives_identical_files() {
    let text = CeremonyText::demo();
    let first = render_evidence(&inputs(&text), &Templates::builtin()).unwrap();
    let second = render_evidence(&inputs(&text), &Templates::builtin()).unwrap();
    assert_eq!(first, second);
}

#[test]
fn evidence_names_every_published_file_with_its_digest() {
    let files = render_evidence(&inputs(&CeremonyText::demo()), &Templates::builtin()).unwrap();
    let data: serde_json::Value =
        serde_json::from_slice(files.get("evidence.json").unwrap()).unwrap();
    let listed = data["files"].as_array().unwrap();
    assert_eq!(listed.len(), 10);
    for entry in listed {
        let name = entry["name"].as_str().unwrap();
        let bytes = files
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not published"));
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        assert_eq!(entry["sha256"], digest.as_str(), "{name}");
    }
}

#[test]
fn empty_sections_say_so() {
    let files = render_evidence(&inputs(&CeremonyText::demo()), &Templates::builtin()).unwrap();
    let markdown = String::from_utf8(files.get("index.md").unwrap().to_vec()).unwrap();
    let html = String::from_utf8(files.get("index.html").unwrap().to_vec()).unwrap();
    assert!(markdown.contains("None recorded."));
    assert!(markdown.contains("Status: not logged."));
    assert!(html.contains("<p>None recorded.</p>"));
    assert!(html.contains("<p>Status: not logged.</p>"));
}

#[test]
fn own_template_with_unknown_field_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.md.hbs"), "# {{fleet.id}}\n").unwrap();
    std::fs::write(
        dir.path().join("index.html.hbs"),
        "<p>{{fleet.id}} {{fleet.sponsor}}</p>\n",
    )
    .unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    let error = render_evidence(&inputs(&CeremonyText::demo()), &templates).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("fleet.sponsor"), "{message}");
    assert!(message.contains("HTML"), "{message}");
}

#[test]
fn own_templates_render() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.md.hbs"), "# {{fleet.id}}\n").unwrap();
    std::fs::write(
        dir.path().join("index.html.hbs"),
        "<h1>{{fleet.namespace}}</h1>\n",
    )
    .unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    let files = render_evidence(&inputs(&CeremonyText::demo()), &templates).unwrap();
    assert_eq!(files.get("index.md").unwrap(), b"# demo-fleet\n");
    assert_eq!(
        files.get("index.html").unwrap(),
        b"<h1>demo.fleet.example</h1>\n"
    );
}

#[test]
fn templates_folder_needs_both_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.md.hbs"), "# {{fleet.id}}\n").unwrap();
    let message = Templates::load(dir.path()).unwrap_err().to_string();
    assert!(message.contains("index.html.hbs"), "{message}");
}
