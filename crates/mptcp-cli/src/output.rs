//! Presentation helpers: JSON on stdout, aligned tables, colour, timestamps.
//!
//! Colour is decided once ([`Output::new`]): on with `--color always`; with
//! `--color auto` (the default) only when stdout is a terminal, `TERM` is not `dumb`
//! and `NO_COLOR` is unset or empty. JSON output is never coloured.

use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::cli::ColorWhen;
use crate::error::Error;

/// Green, for what is fine.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Yellow, for what deserves a look.
pub const WARN: Style = AnsiColor::Yellow.on_default();
/// Red and bold, for what is broken.
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// Bold, for headers.
pub const HEADER: Style = Style::new().bold();
/// Dim, for secondary lines.
pub const DIM: Style = Style::new().dimmed();
/// Cyan, for names of things (events, ids).
pub const NAME: Style = AnsiColor::Cyan.on_default();

/// Where the subcommands write: text or JSON on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json` was given.
    pub json: bool,
    colour: bool,
    terminal: bool,
}

impl Output {
    /// Decides JSON and colour for this run.
    pub fn new(json: bool, when: ColorWhen) -> Output {
        let terminal = std::io::stdout().is_terminal();
        let colour = !json
            && match when {
                ColorWhen::Always => true,
                ColorWhen::Never => false,
                ColorWhen::Auto => {
                    terminal
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
                }
            };
        Output {
            json,
            colour,
            terminal,
        }
    }

    /// Whether stdout is a terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// `text` in `style`, if colour is on.
    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.colour && style != Style::new() {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    /// Writes `text` to stdout as it is.
    pub fn print(&self, text: &str) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(Error::output)
    }

    /// Writes one JSON document (pretty) to stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::msg(format!("cannot encode JSON: {e}")))?;
        text.push('\n');
        self.print(&text)
    }

    /// Writes one JSON document on one line (JSON lines, for streams).
    pub fn json_line<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let mut text = serde_json::to_string(value)
            .map_err(|e| Error::msg(format!("cannot encode JSON: {e}")))?;
        text.push('\n');
        self.print(&text)
    }

    /// One line of a daemon's log (`pm run`, `lb run`): `HH:MM:SS.mmm` and the
    /// event's text painted with `style`, or with `--json` the event's fields after a
    /// `time` field, as one JSON line.
    pub fn log_event<E: Serialize + std::fmt::Display>(
        &self,
        event: &E,
        style: Style,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Line<'a, E> {
            time: String,
            #[serde(flatten)]
            event: &'a E,
        }
        let now = Timestamp::now();
        if self.json {
            self.json_line(&Line {
                time: now.rfc3339,
                event,
            })
        } else {
            self.print(&format!(
                "{} {}\n",
                now.clock,
                self.paint(style, &event.to_string())
            ))
        }
    }
}

/// A cell of a [`Table`]: its text and style.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    /// A cell in `style`.
    pub fn styled(text: impl Into<String>, style: Style) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            style: Style::new(),
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// Columns aligned on the width of their widest cell, two spaces apart. Widths are
/// taken on the plain text, colour is added after padding.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with a bold header row.
    pub fn with_header(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| Cell::styled(*h, HEADER)).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row.
    pub fn render(&self, out: &Output) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.text.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let last = c + 1 == row.len();
                let padded = if last {
                    cell.text.clone()
                } else {
                    format!("{:<width$}  ", cell.text, width = widths[c])
                };
                // Colour only the text, not the padding after it.
                let (body, pad) = padded.split_at(cell.text.len());
                line.push_str(&out.paint(cell.style, body));
                line.push_str(pad);
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// A timestamp in UTC, in the two forms the output uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// `HH:MM:SS.mmm`, for human lines.
    pub clock: String,
    /// RFC 3339 with milliseconds, `2026-08-05T12:34:56.789Z`, for JSON.
    pub rfc3339: String,
}

impl Timestamp {
    /// The time now.
    pub fn now() -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix_millis(since.as_millis())
    }

    /// The time `ms` milliseconds after the Unix epoch.
    pub fn from_unix_millis(ms: u128) -> Timestamp {
        let millis = (ms % 1000) as u32;
        let secs = ms / 1000;
        let days = (secs / 86_400) as i64;
        let rem = (secs % 86_400) as u32;
        let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let (year, month, day) = civil_from_days(days);
        let clock = format!("{h:02}:{m:02}:{s:02}.{millis:03}");
        Timestamp {
            rfc3339: format!("{year:04}-{month:02}-{day:02}T{clock}Z"),
            clock,
        }
    }
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A connection token as the kernel tools print it: `0x0a1b2c3d`.
pub fn token(token: u32) -> String {
    format!("{token:#010x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = Timestamp::from_unix_millis(0);
        assert_eq!(t.rfc3339, "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:58.007Z, a leap day.
        let t = Timestamp::from_unix_millis(1_709_251_198_007);
        assert_eq!(t.rfc3339, "2024-02-29T23:59:58.007Z");
        assert_eq!(t.clock, "23:59:58.007");
        let t = Timestamp::from_unix_millis(4_102_444_800_000);
        assert_eq!(t.rfc3339, "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(token(0xab), "0x000000ab");
    }

    #[test]
    fn tables_align_on_plain_text() {
        let out = Output {
            json: false,
            colour: true,
            terminal: true,
        };
        let mut t = Table::with_header(&["A", "LONG"]);
        t.row(vec!["xyz".into(), Cell::styled("1", GOOD)]);
        let text = t.render(&out);
        let plain: String = text
            .split('\x1b')
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    s
                } else {
                    s.split_once('m').map_or("", |p| p.1)
                }
            })
            .collect();
        assert_eq!(plain, "A    LONG\nxyz  1\n");
    }
}
