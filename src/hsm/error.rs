//! Errors of the HSM layer, worded for the officer in the room.

use std::path::PathBuf;

use cryptoki::context::Function;
use cryptoki::error::{Error as CryptokiError, RvError};

/// A failed HSM operation, naming the token and, for PKCS#11 errors, the function and
/// return code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The PKCS#11 module could not be loaded or initialised.
    #[error(
        "cannot load the PKCS#11 module {module}: {cause}\nhint: check the module path in the runbook and that the HSM's library is installed",
        cause = load_cause(source)
    )]
    ModuleLoad {
        /// Path of the module.
        module: PathBuf,
        /// The loader's error.
        source: CryptokiError,
    },
    /// A PKCS#11 function returned an error.
    #[error("{summary} on token \"{token}\" while trying to {action}\n  {function} returned {code}{hint}", summary = rv_summary(*rv), function = function_name(*function), code = rv_name(*rv), hint = rv_hint(*rv))]
    Pkcs11 {
        /// Token label or selector.
        token: String,
        /// Action the tool was taking, as a verb phrase.
        action: &'static str,
        /// The PKCS#11 function that failed.
        function: Function,
        /// Its return value.
        rv: RvError,
    },
    /// cryptoki rejected a value before calling the module.
    #[error("cannot {action} on token \"{token}\": {source}")]
    Binding {
        /// Token label or selector.
        token: String,
        /// Action the tool was taking.
        action: &'static str,
        /// The binding's error.
        source: CryptokiError,
    },
    /// No token matches the selector.
    #[error(
        "token {selector} not found in {module}\nhint: list tokens with `pkcs11-tool --module {module} --list-slots`, and check SOFTHSM2_CONF for SoftHSM"
    )]
    TokenNotFound {
        /// The selector, such as `label "fleet-1"`.
        selector: String,
        /// Module searched.
        module: PathBuf,
    },
    /// More than one token matches the selector.
    #[error(
        "{count} tokens match {selector} in {module}; the tool never picks one silently\nhint: select the token by serial number instead"
    )]
    AmbiguousToken {
        /// The selector.
        selector: String,
        /// Number of matches.
        count: usize,
        /// Module searched.
        module: PathBuf,
    },
    /// A token to be initialised exists already.
    #[error(
        "token label \"{label}\" already exists in {module}; initialising it would erase its keys\nhint: choose a new label, or remove the old token deliberately"
    )]
    TokenExists {
        /// The label.
        label: String,
        /// Module searched.
        module: PathBuf,
    },
    /// The slot chosen for a new token contains an initialised token by the time
    /// C_InitToken runs. PKCS#11 re-initialises a token only with its current SO PIN, so
    /// the new random SO PIN is rejected and the token is left as it was.
    #[error(
        "the free slot chosen for token \"{label}\" in {module} holds an initialised token by now; C_InitToken left it unchanged\nhint: run again, so that the slots are listed anew"
    )]
    SlotTaken {
        /// Label of the new token.
        label: String,
        /// Module of the slot.
        module: PathBuf,
    },
    /// No uninitialised slot is available for a new token.
    #[error("no free slot for a new token in {module}")]
    NoFreeSlot {
        /// Module searched.
        module: PathBuf,
    },
    /// Objects with the key label exist already.
    #[error(
        "token \"{token}\" already holds {count} object(s) labelled \"{label}\"; the tool does not generate a second key with the same label\nhint: choose another key label, or remove the old key deliberately"
    )]
    KeyExists {
        /// Token label.
        token: String,
        /// Key label.
        label: String,
        /// Number of objects found.
        count: usize,
    },
    /// The expected key object is missing or not unique.
    #[error(
        "token \"{token}\" holds {count} {class} object(s) labelled \"{label}\", expected exactly one"
    )]
    KeyCount {
        /// Token label.
        token: String,
        /// Key label.
        label: String,
        /// Object class, such as "private key".
        class: &'static str,
        /// Number of objects found.
        count: usize,
    },
    /// The token lacks a mechanism the ceremony needs.
    #[error("token \"{token}\" does not support {mechanism}, which is needed to {purpose}")]
    MissingMechanism {
        /// Token label.
        token: String,
        /// Mechanism name.
        mechanism: String,
        /// Purpose of the mechanism in the ceremony.
        purpose: &'static str,
    },
    /// An attribute read back from the token has an unexpected value.
    #[error("key \"{label}\" on token \"{token}\": {attribute} is {found}, expected {expected}")]
    Attribute {
        /// Token label.
        token: String,
        /// Key label.
        label: String,
        /// Attribute name, such as CKA_SENSITIVE.
        attribute: &'static str,
        /// Expected value.
        expected: String,
        /// Value found.
        found: String,
    },
    /// A public key could not be decoded.
    #[error("key \"{label}\" on token \"{token}\": invalid public key: {detail}")]
    PublicKey {
        /// Token label.
        token: String,
        /// Key label.
        label: String,
        /// What is wrong.
        detail: String,
    },
    /// A replicated key does not match the origin's public key.
    #[error(
        "the fleet key unwrapped on token \"{token}\" does not match the origin's public key; the copy was destroyed"
    )]
    ReplicaMismatch {
        /// Token label.
        token: String,
    },
}

impl HsmError {
    /// Wraps a cryptoki error with the token and the action that failed.
    pub(crate) fn from_cryptoki(token: &str, action: &'static str, error: CryptokiError) -> Self {
        match error {
            CryptokiError::Pkcs11(rv, function) => HsmError::Pkcs11 {
                token: token.to_owned(),
                action,
                function,
                rv,
            },
            other => HsmError::Binding {
                token: token.to_owned(),
                action,
                source: other,
            },
        }
    }

    /// Returns the PKCS#11 return value, if this is a PKCS#11 error.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            HsmError::Pkcs11 { rv, .. } => Some(*rv),
            _ => None,
        }
    }
}

/// Extension to attach token and action to cryptoki results.
pub(crate) trait Context<T> {
    /// Maps the error to [`HsmError`] naming the token and the action.
    fn on(self, token: &str, action: &'static str) -> Result<T, HsmError>;
}

impl<T> Context<T> for Result<T, CryptokiError> {
    fn on(self, token: &str, action: &'static str) -> Result<T, HsmError> {
        self.map_err(|error| HsmError::from_cryptoki(token, action, error))
    }
}

/// The PKCS#11 function name as the specification writes it, such as `C_Login`.
fn function_name(function: Function) -> String {
    format!("C_{function:?}")
}

/// Describes why a module did not load, naming a failed C_Initialize like any PKCS#11
/// error.
fn load_cause(error: &CryptokiError) -> String {
    match error {
        CryptokiError::Pkcs11(rv, function) => {
            format!("{} returned {}", function_name(*function), rv_name(*rv))
        }
        other => other.to_string(),
    }
}

/// The return code as the specification writes it, such as `CKR_PIN_INCORRECT`.
fn rv_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut name = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A short plain summary for the return codes an officer meets in practice.
fn rv_summary(rv: RvError) -> &'static str {
    match rv {
        RvError::PinIncorrect => "wrong PIN",
        RvError::PinLocked => "the PIN is locked",
        RvError::PinLenRange => "the PIN length is outside the token's limits",
        RvError::TokenNotPresent => "the token is not present",
        RvError::TokenNotRecognized => "the token is not recognised",
        RvError::DeviceRemoved => "the device was removed",
        RvError::DeviceError => "the device reported an error",
        RvError::MechanismInvalid => "the mechanism is not supported",
        RvError::UserNotLoggedIn => "not logged in",
        RvError::UserAlreadyLoggedIn => "already logged in",
        RvError::KeyUnextractable => "the key is not extractable",
        RvError::KeyNotWrappable => "the key cannot be wrapped",
        RvError::TemplateInconsistent | RvError::TemplateIncomplete => {
            "the token rejected the key template"
        }
        RvError::AttributeReadOnly => "the attribute is read-only",
        _ => "the HSM reported an error",
    }
}

/// A next step for return codes where there is one.
fn rv_hint(rv: RvError) -> &'static str {
    match rv {
        RvError::PinIncorrect => {
            "\nhint: the tool does not retry; check the PIN before the next attempt, as tokens lock after a few wrong PINs"
        }
        RvError::PinLocked => "\nhint: the security officer must unlock the PIN",
        RvError::MechanismInvalid => {
            "\nhint: run `fleet-ceremony check` to see the token's mechanisms"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_initialisation_names_function_and_code() {
        let error = HsmError::ModuleLoad {
            module: PathBuf::from("/opt/hsm/lib.so"),
            source: CryptokiError::Pkcs11(RvError::DeviceError, Function::Initialize),
        };
        let text = error.to_string();
        assert!(
            text.contains("C_Initialize returned CKR_DEVICE_ERROR"),
            "{text}"
        );
    }

    #[test]
    fn rv_name_matches_specification_spelling() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::MechanismInvalid), "CKR_MECHANISM_INVALID");
    }

    #[test]
    fn locked_pin_has_plain_summary_and_hint() {
        let error = HsmError::Pkcs11 {
            token: "fleet-2".into(),
            action: "log in as user",
            function: Function::Login,
            rv: RvError::PinLocked,
        };
        let text = error.to_string();
        assert!(
            text.starts_with("the PIN is locked on token \"fleet-2\""),
            "{text}"
        );
        assert!(text.contains("C_Login returned CKR_PIN_LOCKED"), "{text}");
        assert!(
            text.contains("hint: the security officer must unlock the PIN"),
            "{text}"
        );
    }

    #[test]
    fn pkcs11_error_names_token_function_and_code() {
        let error = HsmError::Pkcs11 {
            token: "fleet-1".into(),
            action: "log in as user",
            function: Function::Login,
            rv: RvError::PinIncorrect,
        };
        let text = error.to_string();
        assert!(text.starts_with("wrong PIN on token \"fleet-1\""), "{text}");
        assert!(
            text.contains("C_Login returned CKR_PIN_INCORRECT"),
            "{text}"
        );
    }
}
