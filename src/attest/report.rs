//! Attestation report: the named rules, their outcomes and a line-per-rule display.

use std::fmt;

use chrono::{DateTime, Utc};

use super::Vendor;
use super::cert::rfc3339;

/// A rule an attestation is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every link from the attested key (or blob) up to a pinned root verifies, and every
    /// certificate is valid at the verification time.
    Chain,
    /// The attested public key equals the fleet key.
    KeyMatches,
    /// The key was generated on the device, not imported.
    GeneratedOnDevice,
    /// The private key cannot be exported from the device.
    NotExtractable,
}

impl Rule {
    /// Returns the rule's name as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Chain => "chain",
            Rule::KeyMatches => "key matches",
            Rule::GeneratedOnDevice => "generated on device",
            Rule::NotExtractable => "not extractable",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Outcome of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The rule holds.
    Pass,
    /// The rule does not hold, with the reason.
    Fail(String),
    /// The format carries no statement about this rule, with what it does carry.
    NotAttested(String),
}

/// One rule with its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleResult {
    /// The rule checked.
    pub rule: Rule,
    /// Its outcome.
    pub outcome: Outcome,
}

/// What one attestation proves about the fleet key, rule by rule.
#[derive(Clone, Debug)]
pub struct AttestationReport {
    /// Vendor format that was checked.
    pub vendor: Vendor,
    /// Device serial number as the attestation states it.
    pub device_serial: String,
    /// Subject names of every certificate checked, first certificate of each chain first,
    /// ending with the pinned root.
    pub chain: Vec<String>,
    /// Time at which validity windows were checked.
    pub verified_at: DateTime<Utc>,
    /// Outcome of each rule, in the order of [`Rule`].
    pub rules: Vec<RuleResult>,
    /// Encodings accepted leniently and facts worth reading next to the rules.
    pub notes: Vec<String>,
}

impl AttestationReport {
    /// Returns the outcome of `rule`, if it was checked.
    pub fn outcome(&self, rule: Rule) -> Option<&Outcome> {
        self.rules
            .iter()
            .find(|result| result.rule == rule)
            .map(|result| &result.outcome)
    }

    /// Returns the failure reason of `rule`, or `None` if it did not fail.
    pub fn failure(&self, rule: Rule) -> Option<&str> {
        match self.outcome(rule) {
            Some(Outcome::Fail(reason)) => Some(reason),
            _ => None,
        }
    }

    /// Returns true when no rule failed. Rules the format does not attest do not count as
    /// failures; see [`AttestationReport::fully_attested`].
    pub fn passed(&self) -> bool {
        !self
            .rules
            .iter()
            .any(|result| matches!(result.outcome, Outcome::Fail(_)))
    }

    /// Returns true when every rule passed, including origin and extractability.
    pub fn fully_attested(&self) -> bool {
        self.rules
            .iter()
            .all(|result| result.outcome == Outcome::Pass)
    }
}

impl fmt::Display for AttestationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vendor: {}", self.vendor)?;
        writeln!(f, "device serial: {}", self.device_serial)?;
        writeln!(f, "verified at: {}", rfc3339(self.verified_at))?;
        for name in &self.chain {
            writeln!(f, "certificate: {name}")?;
        }
        for result in &self.rules {
            match &result.outcome {
                Outcome::Pass => writeln!(f, "ok {}", result.rule)?,
                Outcome::Fail(reason) => writeln!(f, "FAIL {}: {reason}", result.rule)?,
                Outcome::NotAttested(reason) => {
                    writeln!(f, "not attested {}: {reason}", result.rule)?
                }
            }
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// Turns a list of failure reasons into an outcome.
pub(crate) fn outcome_from(failures: Vec<String>) -> Outcome {
    if failures.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: Vec<Outcome>) -> AttestationReport {
        let rules = [
            Rule::Chain,
            Rule::KeyMatches,
            Rule::GeneratedOnDevice,
            Rule::NotExtractable,
        ];
        AttestationReport {
            vendor: Vendor::YubiHsm2,
            device_serial: "1".into(),
            chain: vec!["CN=a".into()],
            verified_at: DateTime::from_timestamp(0, 0).unwrap(),
            rules: rules
                .into_iter()
                .zip(outcomes)
                .map(|(rule, outcome)| RuleResult { rule, outcome })
                .collect(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn display_one_line_per_rule() {
        let report = report(vec![
            Outcome::Pass,
            Outcome::Fail("different key".into()),
            Outcome::NotAttested("no origin field".into()),
            Outcome::Pass,
        ]);
        let text = report.to_string();
        assert!(text.contains("\nok chain\n"));
        assert!(text.contains("\nFAIL key matches: different key\n"));
        assert!(text.contains("\nnot attested generated on device: no origin field\n"));
        assert!(text.contains("\nok not extractable\n"));
        assert!(!report.passed());
        assert_eq!(report.failure(Rule::KeyMatches), Some("different key"));
    }

    #[test]
    fn not_attested_passes_but_not_fully() {
        let report = report(vec![
            Outcome::Pass,
            Outcome::Pass,
            Outcome::NotAttested("x".into()),
            Outcome::Pass,
        ]);
        assert!(report.passed());
        assert!(!report.fully_attested());
    }
}
