//! Finding, initialising and logging in to tokens.

use std::sync::Mutex;

use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::error::Context;
use super::{HsmError, Library};

/// Serialises token initialisation within the process.
static INITIALISING: Mutex<()> = Mutex::new(());

/// Selector of a token, as a runbook names it. Slot numbers are never used because they change when
/// tokens are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// CKA token label (at most 32 bytes).
    Label(String),
    /// Token serial number.
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::Label(label) => write!(f, "with label \"{label}\""),
            TokenSelector::Serial(serial) => write!(f, "with serial \"{serial}\""),
        }
    }
}

/// A token found in a slot, with the facts its token information reported.
#[derive(Debug, Clone)]
pub struct Token {
    library: Library,
    slot: Slot,
    /// Token label.
    pub label: String,
    /// Serial number.
    pub serial: String,
    /// Model, such as "SoftHSM v2".
    pub model: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Whether the user PIN has been set (CKF_USER_PIN_INITIALIZED).
    pub user_pin_initialised: bool,
}

impl Token {
    /// Finds the one initialised token that matches `selector`.
    pub fn find(library: &Library, selector: &TokenSelector) -> Result<Token, HsmError> {
        select(library, list(library)?, selector)
    }

    /// Initialises a new token with `label` in a free slot, sets the user PIN, and returns
    /// the token. Rejects a label that an existing token already has, because
    /// initialising erases every object on a token.
    pub fn initialise(
        library: &Library,
        label: &str,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<Token, HsmError> {
        // Two threads must not pick the same free slot.
        let _guard = INITIALISING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = free_slot_for(library, label, &[])?;
        let mut token = Token::initialise_in_slot(library, slot, label, so_pin)?;
        token.set_first_user_pin(so_pin, user_pin)?;
        token.user_pin_initialised = true;
        Ok(token)
    }

    /// Initialises the free `slot` with `label` and returns the new token, whose user PIN
    /// is not set yet. The caller must hold the [`INITIALISING`] lock.
    fn initialise_in_slot(
        library: &Library,
        slot: Slot,
        label: &str,
        so_pin: &SecretString,
    ) -> Result<Token, HsmError> {
        match library.context().init_token(slot, so_pin, label) {
            Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::PinIncorrect, _)) => {
                return Err(HsmError::SlotTaken {
                    label: label.to_owned(),
                    module: library.path().to_owned(),
                });
            }
            result => result.on(label, "initialise the token")?,
        }
        tracing::info!(token = label, "initialised token");

        // The slot is known, so its token information is read once instead of searching
        // every slot for the label again, which made initialising n tokens cost O(n²) calls.
        let token = Token::in_slot(library, slot)?;
        if token.label != label {
            return Err(HsmError::TokenNotFound {
                selector: TokenSelector::Label(label.to_owned()).to_string(),
                module: library.path().to_owned(),
            });
        }
        crate::fault::kill_point(&format!("after-init-token-{label}"));
        Ok(token)
    }

    /// Reads the token information of `slot`.
    fn in_slot(library: &Library, slot: Slot) -> Result<Token, HsmError> {
        let module = library.path().display().to_string();
        let info = library
            .context()
            .get_token_info(slot)
            .on(&module, "read token information")?;
        Ok(Token {
            library: library.clone(),
            slot,
            label: info.label().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            user_pin_initialised: info.user_pin_initialized(),
        })
    }

    /// Sets the first user PIN as the security officer. Used right after initialisation,
    /// and when resuming a ceremony that stopped between the two.
    pub fn set_first_user_pin(
        &self,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<(), HsmError> {
        let session = self.login_so(so_pin)?;
        session
            .init_pin(user_pin)
            .on(&self.label, "set the user PIN")?;
        session.logout().on(&self.label, "log out")
    }

    /// Sets the first user PIN as [`Token::set_first_user_pin`] does, then logs in as the
    /// user on the same session and returns it, which saves closing one session and
    /// opening another.
    pub fn set_first_user_pin_and_login(
        &self,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<Session, HsmError> {
        let session = self.login_so(so_pin)?;
        session
            .init_pin(user_pin)
            .on(&self.label, "set the user PIN")?;
        self.relogin_as_user(session, user_pin)
    }

    /// Logs in as the security officer with `so_pin` to prove the PIN works, then logs in
    /// as the user on the same session and returns it.
    pub fn check_so_pin_and_login(
        &self,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<Session, HsmError> {
        let session = self.login_so(so_pin)?;
        self.relogin_as_user(session, user_pin)
    }

    /// Logs the security officer out of `session` and the user in.
    fn relogin_as_user(
        &self,
        session: Session,
        user_pin: &SecretString,
    ) -> Result<Session, HsmError> {
        session.logout().on(&self.label, "log out")?;
        session
            .login(UserType::User, Some(user_pin))
            .on(&self.label, "log in as user")?;
        Ok(session)
    }

    /// Opens a read-write session logged in as the user.
    pub fn login_user(&self, pin: &SecretString) -> Result<Session, HsmError> {
        let session = self.open_session()?;
        session
            .login(UserType::User, Some(pin))
            .on(&self.label, "log in as user")?;
        Ok(session)
    }

    /// Logs in as the user with `pin` and logs out again, to prove the PIN works.
    ///
    /// Makes exactly one `C_Login` attempt. A wrong PIN counts against the token's retry
    /// limit, so callers must not call this again after a failure.
    pub fn check_user_login(&self, pin: &SecretString) -> Result<(), HsmError> {
        let session = self.login_user(pin)?;
        session.logout().on(&self.label, "log out")
    }

    /// Opens a read-write session logged in as the security officer.
    pub fn login_so(&self, pin: &SecretString) -> Result<Session, HsmError> {
        let session = self.open_session()?;
        session
            .login(UserType::So, Some(pin))
            .on(&self.label, "log in as security officer")?;
        Ok(session)
    }

    /// Opens a read-write session without logging in.
    pub fn open_session(&self) -> Result<Session, HsmError> {
        self.library
            .context()
            .open_rw_session(self.slot)
            .on(&self.label, "open a session")
    }

    /// Returns the mechanisms the token supports.
    pub fn mechanisms(&self) -> Result<Vec<MechanismType>, HsmError> {
        self.library
            .context()
            .get_mechanism_list(self.slot)
            .on(&self.label, "list mechanisms")
    }

    /// Fails naming the first of `needed` that the token does not support.
    pub fn require_mechanisms(
        &self,
        needed: &[(MechanismType, &'static str)],
    ) -> Result<(), HsmError> {
        let supported = self.mechanisms()?;
        for (mechanism, purpose) in needed {
            if !supported.contains(mechanism) {
                return Err(HsmError::MissingMechanism {
                    token: self.label.clone(),
                    mechanism: mechanism.to_string(),
                    purpose,
                });
            }
        }
        Ok(())
    }

    /// The module the token belongs to.
    pub fn library(&self) -> &Library {
        &self.library
    }
}

/// Picks the one token of `tokens` that matches `selector`; never picks one of several.
pub(super) fn select(
    library: &Library,
    tokens: Vec<Token>,
    selector: &TokenSelector,
) -> Result<Token, HsmError> {
    let mut matches: Vec<Token> = tokens
        .into_iter()
        .filter(|token| match selector {
            TokenSelector::Label(label) => &token.label == label,
            TokenSelector::Serial(serial) => &token.serial == serial,
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(HsmError::TokenNotFound {
            selector: selector.to_string(),
            module: library.path().to_owned(),
        }),
        count => Err(HsmError::AmbiguousToken {
            selector: selector.to_string(),
            count,
            module: library.path().to_owned(),
        }),
    }
}

/// Lists the initialised tokens of a module.
pub fn list(library: &Library) -> Result<Vec<Token>, HsmError> {
    Ok(list_slots(library)?.0)
}

/// Reads the token information of every slot with a token once, and returns the
/// initialised tokens and the slots whose token is not initialised, in slot order.
fn list_slots(library: &Library) -> Result<(Vec<Token>, Vec<Slot>), HsmError> {
    let context = library.context();
    let module = library.path().display().to_string();
    let slots = context.get_slots_with_token().on(&module, "list slots")?;

    let mut tokens = Vec::with_capacity(slots.len());
    let mut free = Vec::new();
    for slot in slots {
        let info = context
            .get_token_info(slot)
            .on(&module, "read token information")?;
        if !info.token_initialized() {
            free.push(slot);
            continue;
        }
        tokens.push(Token {
            library: library.clone(),
            slot,
            label: info.label().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            user_pin_initialised: info.user_pin_initialized(),
        });
    }
    Ok((tokens, free))
}

/// Finds a free slot for a new token labelled `label` in one pass over the slots, and
/// rejects the label when an initialised token already has it, because initialising
/// erases every object on a token.
fn free_slot_for(library: &Library, label: &str, known: &[Token]) -> Result<Slot, HsmError> {
    if known.iter().any(|token| token.label == label) {
        return Err(HsmError::TokenExists {
            label: label.to_owned(),
            module: library.path().to_owned(),
        });
    }
    let context = library.context();
    let module = library.path().display().to_string();
    let slots = context.get_slots_with_token().on(&module, "list slots")?;
    let mut free = None;
    // Slots of known tokens hold initialised tokens with other labels; only the rest are
    // read.
    for slot in slots
        .into_iter()
        .filter(|slot| !known.iter().any(|token| token.slot.id() == slot.id()))
    {
        let info = context
            .get_token_info(slot)
            .on(&module, "read token information")?;
        if !info.token_initialized() {
            free = free.or(Some(slot));
        } else if info.label().trim_end() == label {
            return Err(HsmError::TokenExists {
                label: label.to_owned(),
                module: library.path().to_owned(),
            });
        }
    }
    free.ok_or_else(|| HsmError::NoFreeSlot {
        module: library.path().to_owned(),
    })
}

/// The initialised tokens of one module, read once and kept up to date as the ceremony
/// initialises more, so a ceremony over n members reads each slot's token information
/// about once rather than n times.
#[derive(Debug)]
pub struct TokenCache {
    library: Library,
    tokens: Vec<Token>,
    /// Slots without an initialised token when the cache was read.
    free: Vec<Slot>,
}

impl TokenCache {
    /// Reads the initialised tokens of `library`, and its free slots, in one pass.
    pub fn read(library: &Library) -> Result<TokenCache, HsmError> {
        let (tokens, free) = list_slots(library)?;
        Ok(TokenCache {
            library: library.clone(),
            tokens,
            free,
        })
    }

    /// Returns the mechanisms of the first slot that was free when the cache was read, or
    /// `None` when there was none.
    pub fn free_slot_mechanisms(&self) -> Result<Option<Vec<MechanismType>>, HsmError> {
        let Some(slot) = self.free.first() else {
            return Ok(None);
        };
        let module = self.library.path().display().to_string();
        let mechanisms = self
            .library
            .context()
            .get_mechanism_list(*slot)
            .on(&module, "list mechanisms")?;
        Ok(Some(mechanisms))
    }

    /// Finds the one token that matches `selector`, as [`Token::find`] does.
    pub fn find(&self, selector: &TokenSelector) -> Result<Token, HsmError> {
        select(&self.library, self.tokens.clone(), selector)
    }

    /// Initialises a new token with `label`, as [`Token::initialise`] does, and adds it to
    /// the cache. Slots of cached tokens are not read again, and a slot that was free when
    /// the cache was read is used without listing the slots again. Returns the token and
    /// the session that set its user PIN, now logged in as the user.
    pub fn initialise(
        &mut self,
        label: &str,
        so_pin: &SecretString,
        user_pin: &SecretString,
    ) -> Result<(Token, Session), HsmError> {
        let _guard = INITIALISING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = match self.take_free_slot(label)? {
            Some(slot) => slot,
            None => free_slot_for(&self.library, label, &self.tokens)?,
        };
        let mut token = Token::initialise_in_slot(&self.library, slot, label, so_pin)?;
        let session = token.set_first_user_pin_and_login(so_pin, user_pin)?;
        token.user_pin_initialised = true;
        self.tokens.push(token.clone());
        Ok((token, session))
    }

    /// Takes the first slot that was free when the cache was read. Rejects `label` when a
    /// cached token has it.
    ///
    /// The slot is not read again: if another process initialised its token since, the
    /// token has an SO PIN that the new random one does not match, so C_InitToken fails
    /// with [`HsmError::SlotTaken`] and erases nothing.
    fn take_free_slot(&mut self, label: &str) -> Result<Option<Slot>, HsmError> {
        if self.tokens.iter().any(|token| token.label == label) {
            return Err(HsmError::TokenExists {
                label: label.to_owned(),
                module: self.library.path().to_owned(),
            });
        }
        if self.free.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.free.remove(0)))
    }

    /// Records that `token` has changed, for example that its user PIN is now set.
    pub fn update(&mut self, token: &Token) {
        if let Some(cached) = self
            .tokens
            .iter_mut()
            .find(|cached| cached.slot.id() == token.slot.id())
        {
            *cached = token.clone();
        }
    }
}
