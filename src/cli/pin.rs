//! Reading PINs without echo or from standard input, never from arguments or files.

use std::io::BufRead;

use anyhow::{Context, bail};
use secrecy::SecretString;
use zeroize::Zeroizing;

/// Reads one PIN: the first line of standard input when `from_stdin`, otherwise a prompt
/// on the terminal without echo.
pub fn read_pin(prompt: &str, from_stdin: bool) -> anyhow::Result<SecretString> {
    let mut line = Zeroizing::new(String::new());
    if from_stdin {
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the PIN from standard input")?;
    } else {
        *line =
            rpassword::prompt_password(prompt).context("cannot read the PIN from the terminal")?;
    }
    let pin = line.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        bail!(
            "the PIN is empty\nhint: give the PIN on the first line of standard input with --pin-stdin, or type it at the prompt"
        );
    }
    Ok(SecretString::from(pin.to_owned()))
}
