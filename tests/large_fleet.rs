//! End-to-end test of a 16-member fleet spread over four sites: `check`, then `run --yes`
//! up to the signing request, then the tokens inspected with `pkcs11-tool` using the PINs
//! that two custodians recover from their shares.

#![cfg(feature = "ceremony")]

mod common;

use common::{CeremonyFolder, SOFTHSM_MODULE, stderr_text, stdout_text};

/// Number of members in the fleet.
const MEMBERS: usize = 16;

/// Sites the members are spread over, in turn.
const SITES: [&str; 4] = ["Zurich, CH", "Frankfurt, DE", "Dublin, IE", "Lisbon, PT"];

/// CKA_LABEL of the fleet key in the demo runbook.
const FLEET_KEY_LABEL: &str = "demo-fleet-key";

/// Folder of the ceremony's own outputs in the demo runbook.
const WORK_DIR: &str = "ceremony/demo-fleet";

fn member_name(index: usize) -> String {
    format!("member-{:02}", index + 1)
}

fn token_label(index: usize) -> String {
    format!("large-{:02}", index + 1)
}

/// Replaces the members of the demo runbook with `MEMBERS` members on SoftHSM.
fn sixteen_members(demo: String) -> String {
    let start = demo
        .find("\nmembers:\n")
        .expect("the demo runbook lists members");
    let end = demo
        .find("\ncustodians:\n")
        .expect("the demo runbook lists custodians");
    let mut members = String::from("\nmembers:\n");
    for index in 0..MEMBERS {
        members.push_str(&format!(
            "  - name: {}\n    site: {}\n    token:\n      label: {}\n    initialise: true\n",
            member_name(index),
            SITES[index % SITES.len()],
            token_label(index),
        ));
    }
    format!("{}{}{}", &demo[..start], members.trim_end(), &demo[end..])
}

/// Object blocks of `pkcs11-tool --list-objects`: each starts with a line that does not
/// begin with a space.
fn object_blocks(listing: &str) -> Vec<Vec<&str>> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in listing.lines() {
        if line.starts_with(' ') {
            if let Some(block) = blocks.last_mut() {
                block.push(line);
            }
        } else if !line.trim().is_empty() {
            blocks.push(vec![line]);
        }
    }
    blocks
}

/// Returns the trimmed value of `name:` in an object block.
fn block_field<'a>(block: &[&'a str], name: &str) -> Option<&'a str> {
    block.iter().find_map(|line| {
        line.trim_start()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Returns the member, token label and user PIN of each line of `shares combine --reveal`.
fn revealed_user_pins(stdout: &str) -> Vec<(String, String, String)> {
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("member\ttoken\tso_pin\tuser_pin"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "unexpected line {line:?}");
            (
                fields[0].to_owned(),
                fields[1].to_owned(),
                fields[3].to_owned(),
            )
        })
        .collect()
}

/// Runs `pkcs11-tool --list-objects` on a token of the folder, logged in as the user.
fn list_objects(folder: &CeremonyFolder, token_label: &str, pin: &str) -> String {
    let output = std::process::Command::new("pkcs11-tool")
        .args(["--module", SOFTHSM_MODULE, "--token-label", token_label])
        .args(["--login", "--pin", pin, "--list-objects"])
        .current_dir(folder.root())
        .env("SOFTHSM2_CONF", folder.conf())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pkcs11-tool on {token_label} failed: {}",
        stderr_text(&output)
    );
    stdout_text(&output)
}

#[test]
fn sixteen_member_fleet_holds_one_locked_key_each() {
    let folder = CeremonyFolder::new(sixteen_members);

    let check = folder.run(&["check", "runbook.yaml"]);
    assert!(check.status.success(), "check: {}", stderr_text(&check));

    // Exit code 4: the run stopped, as it should, at the auditor's signature.
    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "run: {}", stderr_text(&run));

    let combine = folder.run(&[
        "shares",
        "combine",
        "--share",
        "shares/alice.age",
        "--identity",
        "custodians/alice/identity.txt",
        "--share",
        "shares/carol.age",
        "--identity",
        "custodians/carol/identity.txt",
        "--reveal",
    ]);
    assert!(combine.status.success(), "{}", stderr_text(&combine));
    let pins = revealed_user_pins(&stdout_text(&combine));
    let expected: Vec<(String, String)> = (0..MEMBERS)
        .map(|index| (member_name(index), token_label(index)))
        .collect();
    let found: Vec<(String, String)> = pins
        .iter()
        .map(|(member, token, _)| (member.clone(), token.clone()))
        .collect();
    assert_eq!(found, expected);

    let mut ec_points = Vec::new();
    for (_, token, pin) in &pins {
        let listing = list_objects(&folder, token, pin);
        let blocks = object_blocks(&listing);
        let fleet_key = |kind: &str| -> Vec<&Vec<&str>> {
            blocks
                .iter()
                .filter(|b| {
                    b[0].starts_with(kind) && block_field(b, "label") == Some(FLEET_KEY_LABEL)
                })
                .collect()
        };
        let private = fleet_key("Private Key Object");
        assert_eq!(private.len(), 1, "{token}: private keys in\n{listing}");
        let all_private = blocks
            .iter()
            .filter(|b| b[0].starts_with("Private Key Object"))
            .count();
        assert_eq!(all_private, 1, "{token}: private keys in\n{listing}");

        let access = block_field(private[0], "Access").unwrap_or_default();
        assert!(
            !access
                .replace("never extractable", "")
                .contains("extractable"),
            "{token}: private key access is {access:?}"
        );
        assert!(access.contains("sensitive"), "{token}: {access:?}");

        let public = fleet_key("Public Key Object");
        assert_eq!(public.len(), 1, "{token}: public keys in\n{listing}");
        let point = block_field(public[0], "EC_POINT").unwrap_or_default();
        assert!(!point.is_empty(), "{token}: no EC_POINT in\n{listing}");
        ec_points.push(point.to_owned());
    }
    assert_eq!(ec_points.len(), MEMBERS);
    for (index, point) in ec_points.iter().enumerate() {
        assert_eq!(point, &ec_points[0], "EC point of {}", token_label(index));
    }

    let transcript =
        std::fs::read_to_string(folder.path(&format!("{WORK_DIR}/transcript.jsonl"))).unwrap();
    let replicated_to: Vec<String> = transcript
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["action"] == "fleet key replicated")
        .map(|record| record["details"]["to"].as_str().unwrap().to_owned())
        .collect();
    let others: Vec<String> = (1..MEMBERS).map(member_name).collect();
    assert_eq!(replicated_to, others);
}
