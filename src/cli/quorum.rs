//! Options for commands that need the HSM PINs back from a quorum of custodians.

use std::path::PathBuf;

use anyhow::bail;

use crate::shares::{self, CredentialSet, Recovered, ShareInput};

/// Shares and identities of a quorum of custodians.
#[derive(Debug, Clone, clap::Args)]
pub struct QuorumArgs {
    /// A custodian's share file; give one --share and one --identity per custodian.
    #[arg(long = "share")]
    pub shares: Vec<PathBuf>,
    /// The age identity file of the custodian of the share at the same position.
    #[arg(long = "identity")]
    pub identities: Vec<PathBuf>,
}

impl QuorumArgs {
    /// Recovers the credentials in memory, or returns `None` when no share was given.
    pub fn recover(&self) -> anyhow::Result<Option<CredentialSet>> {
        Ok(self
            .recover_with_context()?
            .map(|recovered| recovered.credentials))
    }

    /// Recovers the credentials with their fleet, set id and threshold, or returns `None`
    /// when no share was given.
    pub fn recover_with_context(&self) -> anyhow::Result<Option<Recovered>> {
        let Some(inputs) = self.inputs()? else {
            return Ok(None);
        };
        let recovered = shares::combine(&inputs)?;
        eprintln!(
            "recovered the PINs of credential set {} from {} shares",
            recovered.credential_set_id,
            inputs.len()
        );
        Ok(Some(recovered))
    }

    /// Pairs each share with its identity, or returns `None` when no share was given.
    pub fn inputs(&self) -> anyhow::Result<Option<Vec<ShareInput>>> {
        if self.shares.is_empty() && self.identities.is_empty() {
            return Ok(None);
        }
        if self.shares.len() != self.identities.len() {
            bail!(
                "{} --share and {} --identity options given; give one identity per share, in the same order",
                self.shares.len(),
                self.identities.len()
            );
        }
        let inputs = self
            .shares
            .iter()
            .zip(&self.identities)
            .map(|(path, identity)| ShareInput {
                path: path.clone(),
                identity: identity.clone(),
            })
            .collect();
        Ok(Some(inputs))
    }
}
