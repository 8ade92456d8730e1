//! `fleet-ceremony bundle diff`: keys added, removed and changed between two epochs.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::bundle::diff::diff_documents;
use crate::bundle::verify::BUNDLE_FILE_NAME;
use crate::bundle::{Bundle, FleetKeyDocument};

/// Arguments of `bundle diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The older epoch: a bundle.json, an evidence folder holding one, or a fleet-key.json.
    pub old: PathBuf,
    /// The next epoch of the same namespace, in the same forms.
    pub new: PathBuf,
}

/// Prints the differences; fails when the two are not consecutive epochs of a namespace.
///
/// NOTE: the bundles' signatures are not verified here; run `verify` on each first.
pub fn run(args: &DiffArgs) -> anyhow::Result<u8> {
    let old = read_document(&args.old)?;
    let new = read_document(&args.new)?;
    let diff = diff_documents(&old, &new).with_context(|| {
        format!(
            "{} and {} are not consecutive epochs of one namespace",
            args.old.display(),
            args.new.display()
        )
    })?;
    print!("{diff}");
    Ok(super::EXIT_OK)
}

/// Reads the fleet-key document of a bundle, an evidence folder or a document file.
fn read_document(path: &Path) -> anyhow::Result<FleetKeyDocument> {
    let file = if path.is_dir() {
        path.join(BUNDLE_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let document_bytes = match Bundle::from_json_bytes(&bytes) {
        Ok(bundle) => bundle.document_bytes()?,
        Err(_) => bytes,
    };
    FleetKeyDocument::from_json_bytes(&document_bytes).with_context(|| {
        format!(
            "{} is neither a bundle nor a fleet-key document",
            file.display()
        )
    })
}
