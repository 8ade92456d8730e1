//! Evidence rendered from free text that tries to break out of its place: HTML tags,
//! Markdown syntax, backticks and control characters in every field a runbook or trust
//! file lets people write.

mod evidence_fixture;

use evidence_fixture::{CeremonyText, inputs};
use fleet_ceremony::ceremony::{EvidenceFiles, render_evidence};
use fleet_ceremony::evidence::Templates;
use serde_json::Value;

/// Text that would run a script, open an image or a link, start a heading, code span or
/// table row, or move the terminal cursor, if any format let it through.
const HOSTILE: &str = "<script>alert(1)</script> <img src=x onerror=alert(2)> | # * [x](y) ![i](u) `tick` ``` _em_ ~~s~~ &amp; \"q\" 'a' \\ \u{7}\u{1b}[31m\r\n# heading\n| --- | --- |\t= + /";

fn render(text: &CeremonyText) -> EvidenceFiles {
    render_evidence(&inputs(text), &Templates::builtin()).unwrap()
}

fn text_of(files: &EvidenceFiles, name: &str) -> String {
    String::from_utf8(files.get(name).unwrap().to_vec()).unwrap()
}

/// Counts the cells of a GitHub table row: pipes not escaped by a backslash, minus one.
fn cell_count(row: &str) -> usize {
    let mut pipes = 0;
    let mut backslashes = 0;
    for c in row.chars() {
        if c == '|' && backslashes % 2 == 0 {
            pipes += 1;
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
    }
    pipes - 1
}

/// Groups the lines of Markdown tables: runs of lines that start with a pipe.
fn tables(markdown: &str) -> Vec<Vec<&str>> {
    let mut tables: Vec<Vec<&str>> = Vec::new();
    let mut in_table = false;
    for line in markdown.lines() {
        if line.starts_with('|') {
            if !in_table {
                tables.push(Vec::new());
            }
            tables.last_mut().unwrap().push(line);
        }
        in_table = line.starts_with('|');
    }
    tables
}

#[test]
fn hostile_html_stays_inert() {
    let files = render(&CeremonyText::hostile(HOSTILE));
    for name in ["index.html", "diagram.svg"] {
        let page = text_of(&files, name).to_lowercase();
        assert!(!page.contains("<script"), "{name} has a script tag");
        assert!(!page.contains("<img"), "{name} has an img tag");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{name}"
        );
    }
}

/// Returns the names of the tags in a page, in order.
fn tag_names(page: &str) -> Vec<String> {
    page.split('<')
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '!')
                .collect()
        })
        .collect()
}

#[test]
fn hostile_html_has_the_same_tags_as_clean_html() {
    let hostile = render(&CeremonyText::hostile(HOSTILE));
    let clean = render(&CeremonyText::demo());
    for name in ["index.html", "diagram.svg"] {
        assert_eq!(
            tag_names(&text_of(&hostile, name)),
            tag_names(&text_of(&clean, name)),
            "{name}"
        );
    }
}

#[test]
fn hostile_html_keeps_each_field_in_its_cell() {
    let files = render(&CeremonyText::hostile(HOSTILE));
    let html = text_of(&files, "index.html");
    // Each member row of the members table keeps its eight cells.
    let rows: Vec<&str> = html
        .split("<tr>")
        .filter(|row| row.starts_with("<td>hsm-"))
        .collect();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row.matches("<td>").count(), 8, "{row}");
        assert_eq!(row.matches("</td>").count(), 8, "{row}");
    }
    let control: Vec<char> = html
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(control.is_empty(), "control characters {control:?}");
}

#[test]
fn hostile_markdown_keeps_table_structure() {
    let files = render(&CeremonyText::hostile(HOSTILE));
    let markdown = text_of(&files, "index.md");
    let tables = tables(&markdown);
    assert!(tables.len() >= 7, "found {} tables", tables.len());
    for table in tables {
        let header = cell_count(table[0]);
        assert!(table[1].starts_with("| ---"), "no delimiter row: {table:?}");
        for row in &table {
            assert_eq!(cell_count(row), header, "row {row:?} in table {table:?}");
        }
    }
}

#[test]
fn hostile_markdown_opens_no_syntax() {
    let files = render(&CeremonyText::hostile(HOSTILE));
    let markdown = text_of(&files, "index.md");
    let control: Vec<char> = markdown
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(control.is_empty(), "control characters {control:?}");
    assert!(!markdown.contains("[x](y)"), "a link survived");
    assert!(!markdown.contains("![i]"), "an image survived");
    assert!(!markdown.contains(" <script"), "raw HTML survived");
    assert!(markdown.contains(r"\<script\>alert(1)\</script\>"));
    assert!(
        !markdown.lines().any(|line| line.starts_with("# heading")),
        "a heading was injected"
    );
    // Code fences in the page come only from the template, in pairs.
    let fences = markdown
        .lines()
        .filter(|line| line.starts_with("```"))
        .count();
    let clean = text_of(&render(&CeremonyText::demo()), "index.md");
    let clean_fences = clean.lines().filter(|line| line.starts_with("```")).count();
    assert_eq!(fences, clean_fences);
}

#[test]
fn hostile_json_round_trips_exact_text() {
    let text = CeremonyText::hostile(HOSTILE);
    let files = render(&text);
    let data: Value = serde_json::from_slice(files.get("evidence.json").unwrap()).unwrap();
    assert_eq!(data["fleet"]["namespace"], text.namespace.as_str());
    assert_eq!(data["key"]["label"], text.key_label.as_str());
    assert_eq!(
        data["signatures"]["auditor_name"],
        text.auditor_name.as_str()
    );
    assert_eq!(
        data["signatures"]["operator_name"],
        text.operator_name.as_str()
    );
    assert_eq!(
        data["transcript"]["records"][3]["action"],
        text.transcript_action.as_str()
    );
    for (index, site) in text.sites.iter().enumerate() {
        assert_eq!(data["members"][index]["site"], site.as_str());
        assert_eq!(data["members"][index]["model"], text.model.as_str());
        assert_eq!(
            data["members"][index]["manufacturer"],
            text.manufacturer.as_str()
        );
    }
    for (index, name) in text.custodians.iter().enumerate() {
        assert_eq!(data["custodians"]["names"][index], name.as_str());
    }
}

#[test]
fn base64_survives_markdown_and_json() {
    let inputs = inputs(&CeremonyText::hostile(HOSTILE));
    let files = render_evidence(&inputs, &Templates::builtin()).unwrap();
    let markdown = text_of(&files, "index.md");
    let json = text_of(&files, "evidence.json");
    let signatures = [&inputs.auditor.signature, &inputs.operator.signature];
    // The fixed seeds give signatures that use every base64 character outside [A-Za-z0-9].
    let joined = signatures.iter().map(|s| s.as_str()).collect::<String>();
    for c in ['+', '/', '='] {
        assert!(joined.contains(c), "no {c} in {joined}");
    }
    for signature in signatures {
        assert!(markdown.contains(&format!("`{signature}`")), "{signature}");
        assert!(json.contains(&format!("\"{signature}\"")), "{signature}");
    }
}

#[test]
fn hostile_text_in_every_field_reaches_the_pages() {
    let text = CeremonyText::hostile(HOSTILE);
    let files = render(&text);
    let html = text_of(&files, "index.html");
    let markdown = text_of(&files, "index.md");
    for (field, value) in text.fields() {
        let prefix = value.split(' ').next().unwrap();
        let escaped_prefix = format!("{prefix} &lt;script&gt;");
        assert!(html.contains(&escaped_prefix), "{field} missing from HTML");
        let escaped_prefix = format!("{prefix} \\<script\\>");
        assert!(
            markdown.contains(&escaped_prefix),
            "{field} missing from Markdown"
        );
    }
}
