//! Checks of the runbook against the environment, before any HSM or file is changed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use cryptoki::mechanism::MechanismType;

use crate::hsm::replicate::REPLICATION_MECHANISMS;
use crate::hsm::{HsmError, Library, TokenCache, TokenSelector};
use crate::runbook::{Growth, KeyAlgorithm, Member, Runbook, TokenRef};

/// A problem that stops the ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a runbook field, a member or a file.
    pub place: String,
    /// What is wrong, with a hint line when there is a next step.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Checks the runbook's files, PKCS#11 modules, tokens and mechanisms. Reads only: it
/// loads modules and lists slots, tokens and mechanisms, once per module, and never logs
/// in.
pub fn check(runbook: &Runbook) -> Vec<Problem> {
    let mut problems: Vec<Problem> = runbook
        .check_files()
        .into_iter()
        .map(|problem| Problem {
            place: problem.field.clone(),
            message: match &problem.hint {
                Some(hint) => format!(
                    "{}: {}\nhint: {hint}",
                    problem.path.display(),
                    problem.message
                ),
                None => format!("{}: {}", problem.path.display(), problem.message),
            },
        })
        .collect();
    if !problems.is_empty() {
        // A missing module or an existing output makes the HSM checks moot.
        return problems;
    }

    check_algorithm(runbook, &mut problems);
    problems.extend(super::attestation::check_chains(runbook).1);
    let mut modules = BTreeMap::new();
    for (index, member) in runbook.members.iter().enumerate() {
        if let Err(problem) = check_member(runbook, index, member, &mut modules) {
            problems.push(problem);
        }
    }
    problems
}

/// The token listing and free-slot mechanisms of one PKCS#11 module, read once for all its
/// members. An error is kept as its message, to be reported for each member of the module.
struct ModuleState {
    /// The initialised tokens.
    tokens: Result<TokenCache, String>,
    /// The mechanisms of the first free slot, or `None` when there is no free slot. Every
    /// member of the module is checked against this slot, because the tokens are not
    /// initialised yet and each new one takes the first free slot in turn.
    free_slot_mechanisms: Result<Option<Vec<MechanismType>>, String>,
}

impl ModuleState {
    fn read(library: &Library) -> ModuleState {
        let tokens = TokenCache::read(library).map_err(|error| error.to_string());
        // After a failed listing the members report that failure, so the slots are not
        // read again.
        let free_slot_mechanisms = match &tokens {
            Ok(cache) => cache
                .free_slot_mechanisms()
                .map_err(|error| error.to_string()),
            Err(message) => Err(message.clone()),
        };
        ModuleState {
            tokens,
            free_slot_mechanisms,
        }
    }
}

fn check_algorithm(runbook: &Runbook, problems: &mut Vec<Problem>) {
    if runbook.fleet_key.algorithm == KeyAlgorithm::Ed25519
        && runbook.fleet_key.growth == Growth::TrustedWrap
    {
        problems.push(Problem {
            place: "fleet_key.growth".into(),
            message: "growth trusted-wrap keeps the fleet key wrappable for add-member, which copies only ecdsa-p256 keys\nhint: use `algorithm: ecdsa-p256`, or `growth: locked`".into(),
        });
    }
    if runbook.fleet_key.algorithm == KeyAlgorithm::Ed25519 && runbook.members.len() > 1 {
        problems.push(Problem {
            place: "fleet_key.algorithm".into(),
            message: format!(
                "an ed25519 fleet key cannot be replicated to {} members: SoftHSM 2.6.1 cannot wrap or unwrap EdDSA private keys, and this version replicates only ecdsa-p256 keys\nhint: use `algorithm: ecdsa-p256`, or a one-member fleet",
                runbook.members.len()
            ),
        });
    }
}

fn check_member(
    runbook: &Runbook,
    index: usize,
    member: &Member,
    modules: &mut BTreeMap<PathBuf, ModuleState>,
) -> Result<(), Problem> {
    let place = format!("members[{index}] ({})", member.name);
    let problem = |message: String| Problem {
        place: place.clone(),
        message,
    };
    let library = Library::load(&member.module).map_err(|e| problem(e.to_string()))?;
    let needed = needed_mechanisms(runbook, member);

    if !member.initialise {
        // NOTE: using a token that already exists needs its SO and user PINs at run time,
        // which this version has no way to take in.
        return Err(problem(
            "members with `initialise: false` are not supported by this version\nhint: set `initialise: true` and give the member a new token label".into(),
        ));
    }
    let TokenRef::Label(label) = &member.token else {
        return Err(problem(
            "a token to be initialised must be named by label, because it has no serial yet".into(),
        ));
    };

    let module = modules
        .entry(member.module.clone())
        .or_insert_with(|| ModuleState::read(&library));
    let tokens = module
        .tokens
        .as_ref()
        .map_err(|message| problem(message.clone()))?;
    match tokens.find(&TokenSelector::Label(label.clone())) {
        Ok(_) => {
            let hint = if member.erase_existing {
                "erasing an existing token is not supported by this version, because it needs the token's current SO PIN"
            } else {
                "initialising it would erase its keys; choose a new label, or remove the old token deliberately"
            };
            return Err(problem(format!(
                "token label \"{label}\" already exists in {}\nhint: {hint}",
                member.module.display()
            )));
        }
        Err(HsmError::TokenNotFound { .. }) => {}
        Err(error) => return Err(problem(error.to_string())),
    }

    let mechanisms = match &module.free_slot_mechanisms {
        Ok(Some(mechanisms)) => mechanisms,
        Ok(None) => {
            return Err(problem(format!(
                "no free slot for a new token in {}",
                member.module.display()
            )));
        }
        Err(message) => return Err(problem(message.clone())),
    };
    for (mechanism, purpose) in needed {
        if !mechanisms.contains(&mechanism) {
            return Err(problem(format!(
                "the token does not support {mechanism}, which is needed to {purpose}\nhint: use an HSM that offers it, or check `slots.mechanisms` in softhsm2.conf"
            )));
        }
    }
    Ok(())
}

/// Mechanisms a member needs, with the reason for each.
fn needed_mechanisms(runbook: &Runbook, member: &Member) -> Vec<(MechanismType, &'static str)> {
    let mut needed = Vec::new();
    if member.origin {
        needed.push(match runbook.fleet_key.algorithm {
            KeyAlgorithm::EcdsaP256 => (MechanismType::ECC_KEY_PAIR_GEN, "generate the fleet key"),
            KeyAlgorithm::Ed25519 => (
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                "generate the fleet key",
            ),
        });
    }
    if runbook.members.len() > 1 {
        needed.extend(REPLICATION_MECHANISMS.iter().copied());
    }
    needed
}
