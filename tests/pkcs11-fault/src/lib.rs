//! A PKCS#11 module for tests: it forwards every call to a real module and fails one
//! chosen call, so a test can sweep a fault over every call a program makes.
//!
//! Settings, read from the environment once per process:
//!
//! - `FAULT_PKCS11_MODULE`: the real module (default `/usr/lib/softhsm/libsofthsm2.so`).
//! - `FAULT_PKCS11_FAIL_AT`: the number N of the call to fail, counting from 1 over every
//!   call through the function list in this process. Unset or 0, no call fails.
//! - `FAULT_PKCS11_RV`: the return value of the failed call, decimal or `0x` hex
//!   (default `CKR_DEVICE_ERROR`, 0x30).
//! - `FAULT_PKCS11_COUNT_FILE`: a file to which each call appends a line `N C_Name`, so
//!   the last line contains the number of calls so far.
//!
//! `C_GetFunctionList` is neither counted nor failed. The failed call does not reach the
//! real module, as if the device had refused it.

#![allow(non_snake_case)]

use std::ffi::c_void;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use cryptoki_sys::*;

const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Settings taken from the environment.
struct Settings {
    module: String,
    fail_at: u64,
    rv: CK_RV,
    count_file: Option<Mutex<std::fs::File>>,
}

/// The real module, loaded once and never unloaded.
struct Real {
    _library: libloading::Library,
    list: CK_FUNCTION_LIST,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
static REAL: OnceLock<Option<Real>> = OnceLock::new();
static LIST: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();
static CALLS: AtomicU64 = AtomicU64::new(0);

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |text: String| match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        };
        let count_file = var("FAULT_PKCS11_COUNT_FILE").and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .map(Mutex::new)
        });
        Settings {
            module: var("FAULT_PKCS11_MODULE").unwrap_or_else(|| DEFAULT_MODULE.to_owned()),
            fail_at: var("FAULT_PKCS11_FAIL_AT").and_then(number).unwrap_or(0),
            rv: var("FAULT_PKCS11_RV")
                .and_then(number)
                .map(|rv| rv as CK_RV)
                .unwrap_or(CKR_DEVICE_ERROR),
            count_file,
        }
    })
}

fn real() -> Option<&'static Real> {
    REAL.get_or_init(|| {
        let module = &settings().module;
        // SAFETY: loading a PKCS#11 module runs its initialisers, which is what any
        // PKCS#11 application does; the library is kept for the life of the process.
        let library = match unsafe { libloading::Library::new(module) } {
            Ok(library) => library,
            Err(error) => {
                eprintln!("pkcs11-fault: cannot load {module}: {error}");
                return None;
            }
        };
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module, and the
        // list it returns stays valid while the module is loaded.
        let rv = unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                match library.get(b"C_GetFunctionList\0") {
                    Ok(get) => get,
                    Err(error) => {
                        eprintln!("pkcs11-fault: {module} has no C_GetFunctionList: {error}");
                        return None;
                    }
                };
            get(&mut list)
        };
        if rv != CKR_OK || list.is_null() {
            eprintln!("pkcs11-fault: C_GetFunctionList of {module} returned {rv:#x}");
            return None;
        }
        // SAFETY: checked non-null above; the list is plain data, copied once.
        let list = unsafe { *list };
        Some(Real {
            _library: library,
            list,
        })
    })
    .as_ref()
}

/// Counts a call; returns the return value to fail it with when it is the chosen one.
fn fault(name: &str) -> Option<CK_RV> {
    let settings = settings();
    let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(file) = &settings.count_file {
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = writeln!(file, "{n} {name}");
    }
    (n == settings.fail_at).then_some(settings.rv)
}

/// Defines one forwarding function per entry of the function list, and the list itself.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        mod forwarders {
            use super::*;
            $(
                pub(super) unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
                    if let Some(rv) = fault(stringify!($name)) {
                        return rv;
                    }
                    match real().and_then(|real| real.list.$name) {
                        // SAFETY: the caller's arguments go unchanged to the real module's
                        // function of the same name and signature.
                        Some(function) => unsafe { function($($arg),*) },
                        None => CKR_FUNCTION_NOT_SUPPORTED,
                    }
                }
            )*
        }

        fn function_list(version: CK_VERSION) -> CK_FUNCTION_LIST {
            CK_FUNCTION_LIST {
                version,
                C_GetFunctionList: Some(C_GetFunctionList),
                $($name: Some(forwarders::$name),)*
            }
        }
    };
}

forward! {
    C_Initialize(a: *mut c_void);
    C_Finalize(a: *mut c_void);
    C_GetInfo(a: *mut CK_INFO);
    C_GetSlotList(a: CK_BBOOL, b: *mut CK_SLOT_ID, c: *mut CK_ULONG);
    C_GetSlotInfo(a: CK_SLOT_ID, b: *mut CK_SLOT_INFO);
    C_GetTokenInfo(a: CK_SLOT_ID, b: *mut CK_TOKEN_INFO);
    C_GetMechanismList(a: CK_SLOT_ID, b: *mut CK_MECHANISM_TYPE, c: *mut CK_ULONG);
    C_GetMechanismInfo(a: CK_SLOT_ID, b: CK_MECHANISM_TYPE, c: *mut CK_MECHANISM_INFO);
    C_InitToken(a: CK_SLOT_ID, b: *mut CK_UTF8CHAR, c: CK_ULONG, d: *mut CK_UTF8CHAR);
    C_InitPIN(a: CK_SESSION_HANDLE, b: *mut CK_UTF8CHAR, c: CK_ULONG);
    C_SetPIN(a: CK_SESSION_HANDLE, b: *mut CK_UTF8CHAR, c: CK_ULONG, d: *mut CK_UTF8CHAR, e: CK_ULONG);
    C_OpenSession(a: CK_SLOT_ID, b: CK_FLAGS, c: *mut c_void, d: CK_NOTIFY, e: *mut CK_SESSION_HANDLE);
    C_CloseSession(a: CK_SESSION_HANDLE);
    C_CloseAllSessions(a: CK_SLOT_ID);
    C_GetSessionInfo(a: CK_SESSION_HANDLE, b: *mut CK_SESSION_INFO);
    C_GetOperationState(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: *mut CK_ULONG);
    C_SetOperationState(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: CK_OBJECT_HANDLE, e: CK_OBJECT_HANDLE);
    C_Login(a: CK_SESSION_HANDLE, b: CK_USER_TYPE, c: *mut CK_UTF8CHAR, d: CK_ULONG);
    C_Logout(a: CK_SESSION_HANDLE);
    C_CreateObject(a: CK_SESSION_HANDLE, b: *mut CK_ATTRIBUTE, c: CK_ULONG, d: *mut CK_OBJECT_HANDLE);
    C_CopyObject(a: CK_SESSION_HANDLE, b: CK_OBJECT_HANDLE, c: *mut CK_ATTRIBUTE, d: CK_ULONG, e: *mut CK_OBJECT_HANDLE);
    C_DestroyObject(a: CK_SESSION_HANDLE, b: CK_OBJECT_HANDLE);
    C_GetObjectSize(a: CK_SESSION_HANDLE, b: CK_OBJECT_HANDLE, c: *mut CK_ULONG);
    C_GetAttributeValue(a: CK_SESSION_HANDLE, b: CK_OBJECT_HANDLE, c: *mut CK_ATTRIBUTE, d: CK_ULONG);
    C_SetAttributeValue(a: CK_SESSION_HANDLE, b: CK_OBJECT_HANDLE, c: *mut CK_ATTRIBUTE, d: CK_ULONG);
    C_FindObjectsInit(a: CK_SESSION_HANDLE, b: *mut CK_ATTRIBUTE, c: CK_ULONG);
    C_FindObjects(a: CK_SESSION_HANDLE, b: *mut CK_OBJECT_HANDLE, c: CK_ULONG, d: *mut CK_ULONG);
    C_FindObjectsFinal(a: CK_SESSION_HANDLE);
    C_EncryptInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE);
    C_Encrypt(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_EncryptUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_EncryptFinal(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: *mut CK_ULONG);
    C_DecryptInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE);
    C_Decrypt(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_DecryptUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_DecryptFinal(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: *mut CK_ULONG);
    C_DigestInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM);
    C_Digest(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_DigestUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG);
    C_DigestKey(a: CK_SESSION_HANDLE, b: CK_OBJECT_HANDLE);
    C_DigestFinal(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: *mut CK_ULONG);
    C_SignInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE);
    C_Sign(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_SignUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG);
    C_SignFinal(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: *mut CK_ULONG);
    C_SignRecoverInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE);
    C_SignRecover(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_VerifyInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE);
    C_Verify(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: CK_ULONG);
    C_VerifyUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG);
    C_VerifyFinal(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG);
    C_VerifyRecoverInit(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE);
    C_VerifyRecover(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_DigestEncryptUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_DecryptDigestUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_SignEncryptUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_DecryptVerifyUpdate(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG, d: *mut CK_BYTE, e: *mut CK_ULONG);
    C_GenerateKey(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: *mut CK_ATTRIBUTE, d: CK_ULONG, e: *mut CK_OBJECT_HANDLE);
    C_GenerateKeyPair(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: *mut CK_ATTRIBUTE, d: CK_ULONG, e: *mut CK_ATTRIBUTE, f: CK_ULONG, g: *mut CK_OBJECT_HANDLE, h: *mut CK_OBJECT_HANDLE);
    C_WrapKey(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE, d: CK_OBJECT_HANDLE, e: *mut CK_BYTE, f: *mut CK_ULONG);
    C_UnwrapKey(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE, d: *mut CK_BYTE, e: CK_ULONG, f: *mut CK_ATTRIBUTE, g: CK_ULONG, h: *mut CK_OBJECT_HANDLE);
    C_DeriveKey(a: CK_SESSION_HANDLE, b: *mut CK_MECHANISM, c: CK_OBJECT_HANDLE, d: *mut CK_ATTRIBUTE, e: CK_ULONG, f: *mut CK_OBJECT_HANDLE);
    C_SeedRandom(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG);
    C_GenerateRandom(a: CK_SESSION_HANDLE, b: *mut CK_BYTE, c: CK_ULONG);
    C_GetFunctionStatus(a: CK_SESSION_HANDLE);
    C_CancelFunction(a: CK_SESSION_HANDLE);
    C_WaitForSlotEvent(a: CK_FLAGS, b: *mut CK_SLOT_ID, c: *mut c_void);
}

/// Returns this module's function list; loads the real module on first use. Never
/// counted and never failed.
///
/// # Safety
///
/// `list` must be null or point to writable memory for one pointer.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let Some(real) = real() else {
        return CKR_GENERAL_ERROR;
    };
    let ours = LIST.get_or_init(|| function_list(real.list.version));
    // SAFETY: checked non-null above. Callers only read the list.
    unsafe { *list = ours as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST };
    CKR_OK
}
