//! Typed confirmation before irreversible steps.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;

use crate::ceremony::CeremonyError;

/// Asks the officer to type `expected` (the fleet id) before `what` happens. Fails without
/// asking when standard input is not a terminal, so scripts must pass `--yes` knowingly.
pub fn confirm(expected: &str, what: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "confirmation needed: this {what}, but standard input is not a terminal\nhint: pass --yes for a scripted run"
        );
    }
    eprint!("This {what}. Type the fleet id ({expected}) to go on: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != expected {
        return Err(CeremonyError::NotConfirmed.into());
    }
    Ok(())
}
