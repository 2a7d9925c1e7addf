//! A tiny document model rendered twice: as Markdown (`report.md`, images
//! by relative path) and as self-contained HTML (`report.html`, images
//! inlined as base64 data URIs so the file can be mailed or archived alone).

use base64::Engine as _;
use std::path::Path;

#[derive(Debug, Clone)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    /// Bullet list.
    List(Vec<String>),
    /// Image file name, relative to the report directory, and its alt text.
    Image(String, String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Code {
        lang: String,
        text: String,
    },
}

pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                out.push_str(&"#".repeat(usize::from(*level)));
                out.push(' ');
                out.push_str(t);
                out.push_str("\n\n");
            }
            Block::Para(t) => {
                out.push_str(t);
                out.push_str("\n\n");
            }
            Block::List(items) => {
                for i in items {
                    out.push_str("- ");
                    out.push_str(i);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Image(file, alt) => {
                out.push_str(&format!("![{}]({})\n\n", alt.replace(['[', ']'], ""), file));
            }
            Block::Table { header, rows } => {
                let cell = |s: &String| s.replace('|', "\\|").replace('\n', " ");
                out.push_str(&format!(
                    "| {} |\n",
                    header.iter().map(cell).collect::<Vec<_>>().join(" | ")
                ));
                out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                for r in rows {
                    out.push_str(&format!(
                        "| {} |\n",
                        r.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    ));
                }
                out.push('\n');
            }
            Block::Code { lang, text } => {
                // A fence longer than any backtick run inside the text.
                let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                out.push_str(&format!("{fence}{lang}\n{}\n{fence}\n\n", text.trim_end()));
            }
        }
    }
    out
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders the blocks as one HTML page. Images are read from `dir` and
/// inlined; `read` errors carry the image's path.
pub fn to_html(
    title: &str,
    blocks: &[Block],
    dir: &Path,
) -> Result<String, (std::path::PathBuf, std::io::Error)> {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape_html(title)));
    out.push_str(
        "<style>\nbody{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\n\
         img{max-width:100%;height:auto;border:1px solid #ddd}\n\
         table{border-collapse:collapse;margin:1em 0;font-size:0.92em}\n\
         th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}\n\
         th{background:#f2f2f2}\n\
         pre{background:#f6f6f6;padding:1em;overflow-x:auto}\n\
         </style>\n</head>\n<body>\n",
    );
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                out.push_str(&format!("<h{level}>{}</h{level}>\n", escape_html(t)));
            }
            Block::Para(t) => out.push_str(&format!("<p>{}</p>\n", escape_html(t))),
            Block::List(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    out.push_str(&format!("<li>{}</li>\n", escape_html(i)));
                }
                out.push_str("</ul>\n");
            }
            Block::Image(file, alt) => {
                let path = dir.join(file);
                let bytes = std::fs::read(&path).map_err(|e| (path.clone(), e))?;
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                out.push_str(&format!(
                    "<p><img alt=\"{}\" src=\"data:image/png;base64,{b64}\"></p>\n",
                    escape_html(alt)
                ));
            }
            Block::Table { header, rows } => {
                out.push_str("<table>\n<tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", escape_html(h)));
                }
                out.push_str("</tr>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        out.push_str(&format!("<td>{}</td>", escape_html(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
            Block::Code { text, .. } => {
                out.push_str(&format!("<pre><code>{}</code></pre>\n", escape_html(text)));
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

/// One CSV field, quoted when it holds a comma, quote or line break
/// (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_escape_pipes_and_code_fences_outgrow_backticks() {
        let md = to_markdown(&[
            Block::Table {
                header: vec!["a|b".into(), "c".into()],
                rows: vec![vec!["1".into(), "2".into()]],
            },
            Block::Code {
                lang: "toml".into(),
                text: "x = \"```\"".into(),
            },
        ]);
        assert!(md.contains("| a\\|b | c |\n|---|---|\n| 1 | 2 |"), "{md}");
        assert!(md.contains("````toml\nx = \"```\"\n````"), "{md}");
    }

    #[test]
    fn html_escapes_and_inlines_images() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.png"), b"PNG").expect("write");
        let html = to_html(
            "t",
            &[
                Block::Para("<b> & \"q\"".into()),
                Block::Image("a.png".into(), "alt".into()),
            ],
            dir.path(),
        )
        .expect("image exists");
        assert!(html.contains("<p>&lt;b&gt; &amp; &quot;q&quot;</p>"));
        assert!(
            html.contains("src=\"data:image/png;base64,UE5H\""),
            "{html}"
        );
        let err = to_html(
            "t",
            &[Block::Image("missing.png".into(), "x".into())],
            dir.path(),
        )
        .expect_err("missing image");
        assert!(err.0.ends_with("missing.png"));
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(
            csv_field("gsm8k/exact_match,strict-match"),
            "\"gsm8k/exact_match,strict-match\""
        );
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
