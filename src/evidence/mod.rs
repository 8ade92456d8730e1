//! Rendering the published evidence of a ceremony: Markdown for the blog, one
//! self-contained HTML page, and the same data as JSON.

pub mod diagram;

use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde_json::Value;

/// Default Markdown template, kept in the repository's `templates/` folder.
pub const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/index.md.hbs");

/// Default HTML template, kept in the repository's `templates/` folder.
pub const HTML_TEMPLATE: &str = include_str!("../../templates/index.html.hbs");

/// File name of the Markdown template in a publisher's templates folder.
pub const MARKDOWN_TEMPLATE_FILE: &str = "index.md.hbs";

/// File name of the HTML template in a publisher's templates folder.
pub const HTML_TEMPLATE_FILE: &str = "index.html.hbs";

/// The Markdown and HTML templates that one rendering uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    /// Template of `index.md`.
    pub markdown: String,
    /// Template of `index.html`.
    pub html: String,
}

impl Templates {
    /// Returns the templates built into the tool.
    pub fn builtin() -> Templates {
        Templates {
            markdown: MARKDOWN_TEMPLATE.to_owned(),
            html: HTML_TEMPLATE.to_owned(),
        }
    }

    /// Reads `index.md.hbs` and `index.html.hbs` from `dir`. Both files must exist.
    pub fn load(dir: &Path) -> Result<Templates, EvidenceError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| EvidenceError::TemplateFile {
                path: path.clone(),
                source,
            })
        };
        Ok(Templates {
            markdown: read(MARKDOWN_TEMPLATE_FILE)?,
            html: read(HTML_TEMPLATE_FILE)?,
        })
    }

    /// Renders `data` with these templates; see [`render`].
    pub fn render(&self, data: &Value) -> Result<Rendered, EvidenceError> {
        render(data, &self.markdown, &self.html)
    }
}

/// A template that failed to load, compile or render.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The template has a syntax error.
    #[error("invalid {format} template: {source}")]
    Template {
        /// "Markdown" or "HTML".
        format: &'static str,
        /// Parser error with line and column.
        source: Box<handlebars::TemplateError>,
    },
    /// Rendering failed, for example because the template uses a field the data lacks.
    #[error(
        "cannot render the {format} evidence: {source}\nhint: every field a template uses must exist in evidence.json; fields are never left blank"
    )]
    Render {
        /// "Markdown" or "HTML".
        format: &'static str,
        /// Renderer error naming the field.
        source: Box<handlebars::RenderError>,
    },
    /// A template file could not be read.
    #[error(
        "cannot read the template {path}: {source}\nhint: a templates folder holds both index.md.hbs and index.html.hbs"
    )]
    TemplateFile {
        /// The template file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The evidence data could not be serialised.
    #[error("cannot serialise the evidence data: {0}")]
    Json(#[from] serde_json::Error),
}

/// The rendered evidence files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `index.md`.
    pub markdown: String,
    /// `index.html`.
    pub html: String,
    /// `evidence.json`.
    pub json: String,
    /// `diagram.svg`, also inlined in the HTML.
    pub svg: String,
}

/// Renders the evidence from `data` with the given templates.
///
/// Both templates render in strict mode, so a field that the data lacks is an error, not
/// an empty cell. Text is HTML-escaped in HTML and Markdown-escaped in Markdown; triple
/// braces in a template opt out, for values such as PEM blocks placed in code blocks.
///
/// The templates also see `diagram_svg`, the picture from [`diagram::render`], which is
/// not part of `evidence.json`.
pub fn render(data: &Value, markdown: &str, html: &str) -> Result<Rendered, EvidenceError> {
    let svg = diagram::render(data);
    let mut context = data.clone();
    if let Value::Object(map) = &mut context {
        map.insert("diagram_svg".to_owned(), Value::String(svg.clone()));
    }
    let markdown = render_one(&context, markdown, "Markdown", escape_markdown)?;
    let html = render_one(&context, html, "HTML", escape_html)?;
    let mut json = serde_json::to_string_pretty(data)?;
    json.push('\n');
    Ok(Rendered {
        markdown,
        html,
        json,
        svg,
    })
}

fn render_one(
    data: &Value,
    template: &str,
    format: &'static str,
    escape: fn(&str) -> String,
) -> Result<String, EvidenceError> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(escape);
    registry
        .register_template_string(format, template)
        .map_err(|source| EvidenceError::Template {
            format,
            source: Box::new(source),
        })?;
    registry
        .render(format, data)
        .map_err(|source| EvidenceError::Render {
            format,
            source: Box::new(source),
        })
}

/// Escapes text for HTML character data and quoted attribute values.
///
/// Uses the handlebars HTML escape, and turns control characters other than the line feed
/// into spaces: a terminal escape or a carriage return has no place in a page, while line
/// feeds keep PEM blocks and checkpoints readable inside `<pre>`.
pub fn escape_html(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    handlebars::html_escape(&cleaned)
}

/// Escapes text for an inline position in CommonMark, including a table cell.
///
/// Control characters, line breaks included, become spaces, so text cannot end a table
/// row or start a block. The ASCII punctuation that opens inline syntax (emphasis, code,
/// links, images, raw HTML, entities, strikethrough, table pipes) gets a backslash.
pub fn escape_markdown(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut escaped = String::with_capacity(text.len());
    for (index, &c) in chars.iter().enumerate() {
        match c {
            // An underscore between two letters or digits never opens emphasis in
            // CommonMark, so names such as CKA_SIGN stay readable as plain text.
            '_' if is_word(chars.get(index.wrapping_sub(1))) && is_word(chars.get(index + 1)) => {
                escaped.push(c);
            }
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!' | '#' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

fn is_word(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markdown_escape_keeps_table_rows_intact() {
        let escaped = escape_markdown("a | b\n| c <script>");
        assert_eq!(escaped, r"a \| b \| c \<script\>");
    }

    #[test]
    fn markdown_escape_neutralises_links_and_images() {
        let escaped = escape_markdown("![x](https://example.org/t.png) [y](z)");
        assert!(escaped.starts_with(r"\!\[x\]("), "{escaped}");
        assert!(escaped.ends_with(r"\[y\](z)"), "{escaped}");
    }

    #[test]
    fn markdown_escape_keeps_intraword_underscores() {
        assert_eq!(
            escape_markdown("CKA_NEVER_EXTRACTABLE"),
            "CKA_NEVER_EXTRACTABLE"
        );
        assert_eq!(escape_markdown("_a_ b_"), r"\_a\_ b\_");
    }

    #[test]
    fn html_escape_drops_control_characters() {
        assert_eq!(escape_html("a\u{1b}[31m\r\n<b>"), "a [31m \n&lt;b&gt;");
    }

    #[test]
    fn strict_mode_rejects_missing_field() {
        let error = render(&json!({"a": 1}), "{{a}} {{missing}}", "").expect_err("missing");
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn html_escapes_and_markdown_keeps_base64() {
        let data = json!({"s": "<b>x</b>", "b": "ab+/cd=="});
        let rendered = render(&data, "{{s}} {{{b}}}", "{{s}} {{b}}").expect("renders");
        assert!(rendered.html.contains("&lt;b&gt;"));
        assert!(rendered.markdown.contains("ab+/cd=="));
        assert!(rendered.markdown.contains(r"\<b\>"));
    }
}
