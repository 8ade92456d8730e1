//! A one-line progress count across members on stderr, visible only when stderr is a
//! terminal. Plain text and carriage returns, no colour.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Progress of one step across members, such as "replicating the fleet key: 3/15".
pub(super) struct Meter {
    step: &'static str,
    total: usize,
    done: Mutex<usize>,
    visible: bool,
}

impl Meter {
    /// Starts a count of `total` members for `step`. It shows nothing unless stderr is a
    /// terminal and there is more than one member.
    pub(super) fn start(step: &'static str, total: usize) -> Meter {
        let meter = Meter {
            step,
            total,
            done: Mutex::new(0),
            visible: total > 1 && std::io::stderr().is_terminal(),
        };
        meter.draw(0, "");
        meter
    }

    /// Counts one more member as done.
    pub(super) fn advance(&self, member: &str) {
        let mut done = self
            .done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *done += 1;
        self.draw(*done, member);
    }

    /// Ends the line, so later output starts on a new one.
    pub(super) fn finish(self) {
        if self.visible {
            let _ = writeln!(std::io::stderr());
        }
    }

    fn draw(&self, done: usize, member: &str) {
        if !self.visible {
            return;
        }
        let last = if member.is_empty() {
            String::new()
        } else {
            format!(" (last: {member})")
        };
        // The padding clears what a longer earlier line left.
        let _ = write!(
            std::io::stderr(),
            "\r{}: {done}/{} members{last:<40}",
            self.step,
            self.total
        );
    }
}
