//! The SVG picture of a deployment: members grouped by site, the key's origin and its
//! copies, the custodian quorum, and the signing chain.

use std::fmt::Write;

use serde_json::Value;

const WIDTH: u32 = 900;
const MEMBER_HEIGHT: u32 = 30;
const MEMBER_GAP: u32 = 10;
const SITE_HEADER: u32 = 28;
const SITE_GAP: u32 = 16;
const LEFT_X: u32 = 20;
const SITE_WIDTH: u32 = 380;
const RIGHT_X: u32 = 500;
const RIGHT_WIDTH: u32 = 380;

/// One member as the picture needs it.
struct Member<'a> {
    name: &'a str,
    site: &'a str,
    origin: bool,
}

/// Renders the picture from the evidence data (the content of `evidence.json`). Every text
/// taken from the data is XML-escaped, so the SVG can be inlined in HTML as is.
pub fn render(data: &Value) -> String {
    let members: Vec<Member<'_>> = data["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| Member {
                    name: m["name"].as_str().unwrap_or(""),
                    site: m["site"].as_str().unwrap_or(""),
                    origin: m["role"].as_str().is_some_and(|r| r.starts_with("origin")),
                })
                .collect()
        })
        .unwrap_or_default();
    let sites = group_by_site(&members);

    let mut body = String::new();
    let mut y = 20;
    let mut positions = Vec::new();
    for (site, site_members) in &sites {
        let height = SITE_HEADER + site_members.len() as u32 * (MEMBER_HEIGHT + MEMBER_GAP);
        let _ = writeln!(
            body,
            r##"<rect x="{LEFT_X}" y="{y}" width="{SITE_WIDTH}" height="{height}" rx="8" fill="#f4f6f8" stroke="#8a96a3"/>"##
        );
        let _ = writeln!(
            body,
            r##"<text x="{}" y="{}" font-size="13" font-weight="bold" fill="#333">{}</text>"##,
            LEFT_X + 10,
            y + 18,
            escape(site)
        );
        let mut member_y = y + SITE_HEADER;
        for member in site_members {
            let (fill, role) = if member.origin {
                ("#dcefdc", "origin: generated the fleet key")
            } else {
                ("#ffffff", "copy: unwrapped inside the HSM")
            };
            let _ = writeln!(
                body,
                r##"<rect x="{}" y="{member_y}" width="{}" height="{MEMBER_HEIGHT}" rx="4" fill="{fill}" stroke="#555"/>"##,
                LEFT_X + 10,
                SITE_WIDTH - 60
            );
            let _ = writeln!(
                body,
                r##"<text x="{}" y="{}" font-size="12" fill="#111">{} ({role})</text>"##,
                LEFT_X + 18,
                member_y + 19,
                escape(member.name)
            );
            positions.push((member.origin, member_y + MEMBER_HEIGHT / 2));
            member_y += MEMBER_HEIGHT + MEMBER_GAP;
        }
        y += height + SITE_GAP;
    }
    write_replication_arrows(&mut body, &positions);
    let right_end = write_quorum_and_chain(&mut body, data);

    let height = y.max(right_end) + 10;
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Fleet deployment diagram" font-family="sans-serif">"##,
            "\n<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>\n",
            "{body}</svg>\n"
        ),
        w = WIDTH,
        h = height,
        body = body
    )
}

/// Groups members by site, keeping the order in which sites first appear.
fn group_by_site<'a, 'b>(members: &'b [Member<'a>]) -> Vec<(&'a str, Vec<&'b Member<'a>>)> {
    let mut sites: Vec<(&str, Vec<&Member<'_>>)> = Vec::new();
    for member in members {
        match sites.iter_mut().find(|(site, _)| *site == member.site) {
            Some((_, list)) => list.push(member),
            None => sites.push((member.site, vec![member])),
        }
    }
    sites
}

/// Draws an arrow from the origin to every copy, along the right edge of the site boxes.
fn write_replication_arrows(body: &mut String, positions: &[(bool, u32)]) {
    let Some(&(_, origin_y)) = positions.iter().find(|(origin, _)| *origin) else {
        return;
    };
    let edge = LEFT_X + SITE_WIDTH - 50;
    for (index, &(origin, target_y)) in positions.iter().enumerate() {
        if origin {
            continue;
        }
        let bend = edge + 20 + (index as u32 % 4) * 8;
        let _ = writeln!(
            body,
            r##"<path d="M{edge},{origin_y} C{bend},{origin_y} {bend},{target_y} {edge},{target_y}" fill="none" stroke="#2a6f2a" stroke-width="1.5" marker-end="url(#arrow)"/>"##
        );
    }
    let _ = writeln!(
        body,
        r##"<text x="{}" y="{}" font-size="11" fill="#2a6f2a">wrapped under HSM-held transport keys</text>"##,
        LEFT_X + 10,
        8 + 4
    );
}

/// Draws the custodian quorum and the signing chain; returns the lowest y used.
fn write_quorum_and_chain(body: &mut String, data: &Value) -> u32 {
    let threshold = data["custodians"]["threshold"].as_u64().unwrap_or(0);
    let names: Vec<&str> = data["custodians"]["names"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        body,
        r##"<rect x="{RIGHT_X}" y="20" width="{RIGHT_WIDTH}" height="70" rx="8" fill="#fff6e8" stroke="#b60"/>"##
    );
    let _ = writeln!(
        body,
        r##"<text x="{}" y="42" font-size="13" font-weight="bold" fill="#333">Custodians: any {threshold} of {} recover the HSM PINs</text>"##,
        RIGHT_X + 10,
        names.len()
    );
    let listed: Vec<String> = names.iter().map(|name| escape(name)).collect();
    let _ = writeln!(
        body,
        r##"<text x="{}" y="66" font-size="12" fill="#333">{}</text>"##,
        RIGHT_X + 10,
        listed.join(", ")
    );

    let chain = [
        format!(
            "Auditor: {}",
            data["signatures"]["auditor_name"].as_str().unwrap_or("")
        ),
        format!(
            "Operator: {}",
            data["signatures"]["operator_name"].as_str().unwrap_or("")
        ),
        "Published: bundle.json and this evidence".to_owned(),
    ];
    let notes = [
        "signs the fleet-key document digest",
        "counter-signs the auditor's signature",
        "anyone verifies with pinned keys",
    ];
    let mut y = 120;
    for (index, (title, note)) in chain.iter().zip(notes).enumerate() {
        let _ = writeln!(
            body,
            r##"<rect x="{RIGHT_X}" y="{y}" width="{RIGHT_WIDTH}" height="48" rx="8" fill="#eef2fb" stroke="#3b5b9a"/>"##
        );
        let _ = writeln!(
            body,
            r##"<text x="{}" y="{}" font-size="13" font-weight="bold" fill="#223">{}</text>"##,
            RIGHT_X + 10,
            y + 20,
            escape(title)
        );
        let _ = writeln!(
            body,
            r##"<text x="{}" y="{}" font-size="11" fill="#334">{note}</text>"##,
            RIGHT_X + 10,
            y + 38
        );
        if index + 1 < chain.len() {
            let x = RIGHT_X + RIGHT_WIDTH / 2;
            let _ = writeln!(
                body,
                r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>"##,
                y + 48,
                y + 70
            );
        }
        y += 72;
    }
    y
}

/// Escapes text for XML character data and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(site: &str, name: &str) -> Value {
        json!({
            "members": [
                {"name": "a-1", "site": "Zurich", "role": "origin: generated the key"},
                {"name": name, "site": site, "role": "copy: unwrapped from the origin"},
                {"name": "b-2", "site": "Zurich", "role": "copy: unwrapped from the origin"},
            ],
            "custodians": {"threshold": 2, "names": ["alice", "bob", "carol"]},
            "signatures": {"auditor_name": "Audit & Co", "operator_name": "Op"},
        })
    }

    #[test]
    fn diagram_escapes_hostile_text() {
        let svg = render(&sample("<script>alert(1)</script>", "x\"onload=\"y"));
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("x&quot;onload=&quot;y"));
        assert!(svg.contains("Audit &amp; Co"));
    }

    #[test]
    fn diagram_groups_members_by_site() {
        let svg = render(&sample("Dublin", "d-1"));
        assert_eq!(svg.matches(">Zurich<").count(), 1);
        assert_eq!(svg.matches(">Dublin<").count(), 1);
        // Two copies, so two replication arrows.
        assert_eq!(svg.matches("stroke=\"#2a6f2a\"").count(), 2);
    }

    #[test]
    fn diagram_is_deterministic() {
        assert_eq!(
            render(&sample("Dublin", "d-1")),
            render(&sample("Dublin", "d-1"))
        );
    }
}
