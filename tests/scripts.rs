//! Checks on the shell scripts in `scripts/` and `.ci/`.

use std::path::Path;

/// A script that runs a binary cargo built must find it under `$CARGO_TARGET_DIR` when
/// that is set, so no line may name `target/release/` or `target/debug/` directly.
#[test]
fn scripts_follow_cargo_target_dir() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for folder in ["scripts", ".ci"] {
        for item in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = item.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                assert!(
                    !line.contains("target/release/") && !line.contains("target/debug/"),
                    "{}:{}: a hard-coded target folder ignores CARGO_TARGET_DIR: {line}",
                    path.display(),
                    number + 1
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} scripts found");
}
