//! Headless Chromium (Debian's `chromium`) loads the evidence page from disk with DNS
//! resolution disabled, and the test checks what a reader sees: the fingerprint, the
//! diagram and the verification section, with no request made by the page.
//!
//! How requests are detected: Chromium writes every request of its network service to a
//! NetLog (`--log-net-log`). Requests that the page makes carry the page's origin as
//! initiator ("null" for a file), while the browser's own background requests (component
//! updates, account checks) carry "not an origin". The test fails on any request with any
//! other initiator. `--host-resolver-rules="MAP * ~NOTFOUND"` makes every host name fail
//! to resolve, so no request leaves the machine even while the check runs. A control page
//! with a remote image proves that the detector sees page requests.

mod evidence_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use evidence_fixture::{CeremonyText, fleet_key_fingerprint, inputs};
use fleet_ceremony::ceremony::{render_evidence, write_evidence};
use fleet_ceremony::evidence::Templates;
use serde_json::Value;

/// Debian's Chromium; `scripts/install-deps` installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Initiator that Chromium records for its own requests, which no page makes.
const BROWSER_INITIATOR: &str = "not an origin";

/// Runs Chromium on `page` with networking cut off and returns its standard output.
fn chromium(work: &Path, page: &Path, extra: &[String]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; run scripts/install-deps"
    );
    let profile = tempfile::tempdir_in(work).unwrap();
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Loads `page`, dumping its DOM, and returns the DOM and the URLs the page requested.
fn load_page(work: &Path, page: &Path) -> (String, Vec<String>) {
    let net_log = work.join(format!(
        "{}.netlog.json",
        page.file_name().unwrap().to_string_lossy()
    ));
    let dom = chromium(
        work,
        page,
        &[
            "--dump-dom".to_owned(),
            format!("--log-net-log={}", net_log.display()),
            "--net-log-capture-mode=Everything".to_owned(),
        ],
    );
    (dom, page_requests(&net_log))
}

/// URLs of requests in a NetLog whose initiator is not the browser itself.
fn page_requests(net_log: &Path) -> Vec<String> {
    let log: Value = serde_json::from_slice(&std::fs::read(net_log).unwrap()).unwrap();
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("NetLog names URL_REQUEST_START_JOB");
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"].as_u64() == Some(start_job))
        // The event that starts a job carries the URL; the one that ends it has no params.
        .filter_map(|event| {
            let url = event["params"]["url"].as_str()?;
            let initiator = event["params"]["initiator"].as_str();
            (initiator != Some(BROWSER_INITIATOR)).then(|| url.to_owned())
        })
        .collect()
}

fn write_demo_evidence(work: &Path) -> PathBuf {
    let files = render_evidence(&inputs(&CeremonyText::demo()), &Templates::builtin()).unwrap();
    let dir = work.join("demo-fleet");
    write_evidence(&dir, &files).unwrap();
    dir
}

#[test]
fn detector_sees_a_page_request() {
    let work = tempfile::tempdir().unwrap();
    let page = work.path().join("control.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><img src=\"http://evidence-probe.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let (_, requests) = load_page(work.path(), &page);
    assert_eq!(requests, ["http://evidence-probe.invalid/x.png"]);
}

#[test]
fn evidence_page_makes_no_requests() {
    let work = tempfile::tempdir().unwrap();
    let page = write_demo_evidence(work.path()).join("index.html");
    let (_, requests) = load_page(work.path(), &page);
    assert!(requests.is_empty(), "the page requested {requests:?}");
}

#[test]
fn evidence_page_shows_fingerprint_diagram_and_verification() {
    let work = tempfile::tempdir().unwrap();
    let page = write_demo_evidence(work.path()).join("index.html");
    let (dom, _) = load_page(work.path(), &page);

    let fingerprint = dom
        .split("<pre id=\"fingerprint\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .expect("the page has a fingerprint block");
    assert_eq!(fingerprint, fleet_key_fingerprint());
    assert!(dom.contains("<svg"), "no diagram in the page");
    assert!(dom.contains("aria-label=\"Fleet deployment diagram\""));
    assert!(dom.contains("<h2 id=\"verify\">How to verify</h2>"));
    assert!(dom.contains("openssl pkeyutl -verify"));
}

#[test]
fn evidence_page_screenshot_is_written() {
    let work = tempfile::tempdir().unwrap();
    let page = write_demo_evidence(work.path()).join("index.html");
    let shot = work.path().join("index.png");
    chromium(
        work.path(),
        &page,
        &[
            "--window-size=1200,4000".to_owned(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page of this size compresses to a few kilobytes; the evidence page to far more.
    assert!(png.len() > 50_000, "screenshot is only {} bytes", png.len());
}
