//! Judging a conformance run: per-case results and the summary line parsed from a runner's
//! output, and the documented differences of a host (`known-differences/<name>.txt`: one
//! case per line, its name, then the reason; `#` comments). Used by `cargo xtask hostsuite`
//! and `cargo xtask vmtest` (reference KVM modules) and by the illumos loader harness
//! (documented illumos differences).

use std::collections::BTreeMap;
use std::path::Path;

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `ok NAME`.
    Pass,
    /// `FAIL NAME: why`.
    Fail(String),
    /// `skip NAME: why`.
    Skip(String),
}

/// A parsed suite run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Results by case name.
    pub cases: BTreeMap<String, Outcome>,
    /// The counts of the closing `N passed, N failed, N skipped` line, if it was printed.
    pub summary: Option<[u64; 3]>,
}

impl Report {
    /// Parses the suite's output (other lines are ignored).
    pub fn parse(text: &str) -> Report {
        let mut r = Report::default();
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(name) = line.strip_prefix("ok ") {
                r.cases.insert(name.trim().to_string(), Outcome::Pass);
            } else if let Some(rest) = line.strip_prefix("FAIL ") {
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                r.cases
                    .insert(name.to_string(), Outcome::Fail(why.to_string()));
            } else if let Some(rest) = line.strip_prefix("skip ") {
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                r.cases
                    .insert(name.to_string(), Outcome::Skip(why.to_string()));
            } else if let Some(s) = parse_summary(line) {
                r.summary = Some(s);
            }
        }
        r
    }

    /// Names of the failed cases.
    pub fn failed(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Fail(_)))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Parses `N passed, N failed, N skipped`, optionally after a `label: ` prefix and with
/// trailing text after `skipped`.
pub fn parse_summary(line: &str) -> Option<[u64; 3]> {
    let body = line.rsplit_once(": ").map_or(line, |(_, b)| b);
    let mut parts = body.trim().splitn(3, ", ");
    let mut out = [0; 3];
    for (slot, word) in out.iter_mut().zip(["passed", "failed", "skipped"]) {
        let mut w = parts.next()?.split_whitespace();
        *slot = w.next()?.parse().ok()?;
        if w.next()? != word {
            return None;
        }
    }
    Some(out)
}

/// Documented differences of one KVM module: case name to reason.
pub fn known_differences(file: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, why) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (name.to_string(), why.trim().to_string())
        })
        .collect())
}

/// Compares a run with the documented differences. Returns the lines to print and whether the
/// run is acceptable: every failure must be documented; a documented case that passes is
/// reported (the list is stale) but does not fail the run.
pub fn judge(report: &Report, known: &BTreeMap<String, String>) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut good = report.summary.is_some();
    if !good {
        lines.push("the suite printed no summary line".to_string());
    }
    for name in report.failed() {
        match known.get(name) {
            Some(why) => lines.push(format!("known difference: {name}: {why}")),
            None => {
                good = false;
                lines.push(format!("UNEXPECTED FAILURE: {name}"));
            }
        }
    }
    for name in known.keys() {
        match report.cases.get(name) {
            Some(Outcome::Pass) => {
                lines.push(format!("note: documented difference now passes: {name}"))
            }
            None => lines.push(format!("note: documented case does not exist: {name}")),
            _ => {}
        }
    }
    (lines, good)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "noise\nok a.b\nFAIL c.d: want EINVAL, got 0\nskip e.f: cap X absent\nok g\n2 passed, 1 failed, 1 skipped\n";

    #[test]
    fn parses_cases_and_summary() {
        let r = Report::parse(RUN);
        assert_eq!(r.summary, Some([2, 1, 1]));
        assert_eq!(
            r.cases.get("c.d"),
            Some(&Outcome::Fail("want EINVAL, got 0".into()))
        );
        assert_eq!(
            r.cases.get("e.f"),
            Some(&Outcome::Skip("cap X absent".into()))
        );
        assert_eq!(r.failed(), ["c.d"]);
        assert_eq!(
            parse_summary("reference (kvm_amd): 3 passed, 0 failed, 2 skipped"),
            Some([3, 0, 2])
        );
        assert_eq!(parse_summary("3 passed, 0 failed"), None);
    }

    #[test]
    fn judges_against_known_differences() {
        let r = Report::parse(RUN);
        let mut known = BTreeMap::new();
        assert!(!judge(&r, &known).1);
        known.insert("c.d".to_string(), "host quirk".to_string());
        known.insert("g".to_string(), "fixed upstream".to_string());
        let (lines, good) = judge(&r, &known);
        assert!(good);
        assert!(
            lines
                .iter()
                .any(|l| l == "known difference: c.d: host quirk")
        );
        assert!(lines.iter().any(|l| l.contains("now passes: g")));
        let no_summary = Report::parse("ok a\n");
        assert!(!judge(&no_summary, &BTreeMap::new()).1);
    }
}
