//! fleet-ceremony: key ceremonies for HSM fleets, and verification of their evidence.
//!
//! The crate is split along trust boundaries. [`bundle`] (documents, auditor statements,
//! counter-signatures, trust files, verification) builds without the HSM and age code, so
//! client code can depend on it with `default-features = false`. Everything that touches
//! an HSM, a custodian share or the ceremony state sits behind the `ceremony` feature.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod attest;
pub mod bundle;
pub mod log;

#[cfg(feature = "ceremony")]
pub mod ceremony;
#[cfg(feature = "ceremony")]
pub mod cli;
#[cfg(feature = "ceremony")]
pub mod demo;
#[cfg(feature = "ceremony")]
pub mod evidence;
#[cfg(feature = "ceremony")]
pub mod fault;
#[cfg(feature = "ceremony")]
pub mod fsutil;
#[cfg(feature = "ceremony")]
pub mod hsm;
#[cfg(feature = "ceremony")]
pub mod quorum;
#[cfg(feature = "ceremony")]
pub mod runbook;
#[cfg(feature = "ceremony")]
pub mod shares;
#[cfg(feature = "ceremony")]
pub mod transcript;
#[cfg(feature = "ceremony")]
pub mod words;
