//! Loading PKCS#11 modules, once per module path and process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

use super::HsmError;

/// Modules loaded by this process. SoftHSM crashes when one process initialises and
/// finalises it more than once, so each module is initialised once and never finalised.
static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// A loaded and initialised PKCS#11 module.
#[derive(Clone)]
pub struct Library {
    path: PathBuf,
    context: Pkcs11,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("path", &self.path).finish()
    }
}

impl Library {
    /// Loads and initialises the module at `path`, or returns the one this process loaded
    /// before.
    pub fn load(path: &Path) -> Result<Library, HsmError> {
        let loaded = LOADED.get_or_init(|| Mutex::new(HashMap::new()));
        let mut loaded = loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(context) = loaded.get(path) {
            return Ok(Library {
                path: path.to_owned(),
                context: context.clone(),
            });
        }

        let module_error = |source| HsmError::ModuleLoad {
            module: path.to_owned(),
            source,
        };
        let context = Pkcs11::new(path).map_err(module_error)?;
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(module_error)?;
        tracing::debug!(module = %path.display(), "initialised PKCS#11 module");

        loaded.insert(path.to_owned(), context.clone());
        Ok(Library {
            path: path.to_owned(),
            context,
        })
    }

    /// Path of the module.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cryptoki context.
    pub(crate) fn context(&self) -> &Pkcs11 {
        &self.context
    }
}
