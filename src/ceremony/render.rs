//! Rendering the evidence folder from a ceremony's signed files, for a run and for a
//! later re-rendering of a finished ceremony.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::evidence_data::{self, Published};
use super::finish::{create_new_dir, invalid, read, sha256_hex, trust_from_runbook};
use super::{
    ACTION_EVIDENCE_WRITTEN, AUDITOR_SIGNATURE_FILE, CeremonyError, OPERATOR_SIGNATURE_FILE,
};
use crate::bundle::{self, AuditorSignature, Bundle, FleetKeyDocument, OperatorSignature, Trust};
use crate::evidence::Templates;
use crate::fsutil::write_new;
use crate::runbook::{self, FLEET_KEY_FILE, TRANSCRIPT_FILE};
use crate::transcript::Transcript;

/// Inputs of the evidence rendering: the signed files of a ceremony.
#[derive(Debug, Clone)]
pub struct EvidenceInputs {
    /// Exact bytes of `fleet-key.json`.
    pub document_bytes: Vec<u8>,
    /// Exact bytes of `bundle.json`.
    pub bundle_bytes: Vec<u8>,
    /// The auditor's signature.
    pub auditor: AuditorSignature,
    /// The operator's counter-signature.
    pub operator: OperatorSignature,
    /// The pinned auditor and operator keys, with their names.
    pub trust: Trust,
    /// The transcript as it stood when the evidence was rendered: every line up to and
    /// including "bundle verified".
    pub transcript_bytes: Vec<u8>,
}

/// The files of an evidence folder, by name, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFiles {
    /// File name and content.
    pub files: Vec<(String, Vec<u8>)>,
}

impl EvidenceFiles {
    /// Returns the content of the file `name`, if the folder has one.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(file, _)| file == name)
            .map(|(_, bytes)| bytes.as_slice())
    }
}

/// Result of [`rerender`]: the files written, and whether each matches the run's own
/// rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rerendered {
    /// The new evidence folder.
    pub out: PathBuf,
    /// For each page whose SHA-256 the transcript recorded when the run wrote its
    /// evidence: the file name and whether the new page has the same digest.
    pub matches: Vec<(String, bool)>,
}

/// Pages whose SHA-256 the "evidence written" transcript record keeps, with the record's
/// field name.
const RECORDED_PAGES: [(&str, &str); 3] = [
    ("index.md", "index_md_sha256"),
    ("index.html", "index_html_sha256"),
    ("evidence.json", "evidence_json_sha256"),
];

impl EvidenceInputs {
    /// Assembles the bundle from the document and both signatures, then collects the
    /// inputs. Nothing is verified here.
    pub fn assemble(
        document_bytes: Vec<u8>,
        auditor: AuditorSignature,
        operator: OperatorSignature,
        trust: Trust,
        transcript_bytes: Vec<u8>,
    ) -> EvidenceInputs {
        let bundle_bytes = Bundle::assemble(&document_bytes, &auditor, &operator).to_json_bytes();
        EvidenceInputs {
            document_bytes,
            bundle_bytes,
            auditor,
            operator,
            trust,
            transcript_bytes,
        }
    }
}

/// Renders every file of the evidence folder: the published signed files, `index.md`,
/// `index.html`, `evidence.json` and `diagram.svg`.
///
/// The output depends only on `inputs` and `templates`: no clock, no random values and
/// no paths of this machine, so the same inputs give byte-identical files.
pub fn render_evidence(
    inputs: &EvidenceInputs,
    templates: &Templates,
) -> Result<EvidenceFiles, CeremonyError> {
    let document = FleetKeyDocument::from_json_bytes(&inputs.document_bytes)
        .map_err(|error| invalid(Path::new(bundle::DOCUMENT_FILE_NAME), error))?;
    let published = Published {
        document: &document,
        document_bytes: &inputs.document_bytes,
        bundle_bytes: &inputs.bundle_bytes,
        auditor: &inputs.auditor,
        operator: &inputs.operator,
        trust: &inputs.trust,
        transcript_bytes: &inputs.transcript_bytes,
    };
    let published_files = evidence_data::published_files(&published)?;
    let evidence_name = Path::new("evidence").join(&document.fleet_id);
    let data = evidence_data::build(&published, &published_files, &evidence_name)?;
    let rendered = templates
        .render(&data)
        .map_err(|error| invalid(&evidence_name, error))?;

    let mut files: Vec<(String, Vec<u8>)> = published_files
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect();
    files.push(("index.md".to_owned(), rendered.markdown.into_bytes()));
    files.push(("index.html".to_owned(), rendered.html.into_bytes()));
    files.push(("evidence.json".to_owned(), rendered.json.into_bytes()));
    files.push(("diagram.svg".to_owned(), rendered.svg.into_bytes()));
    Ok(EvidenceFiles { files })
}

/// Creates the folder `dir` and writes every file into it. Fails, writing nothing, when
/// `dir` already exists, and never overwrites a file.
pub fn write_evidence(dir: &Path, files: &EvidenceFiles) -> Result<(), CeremonyError> {
    create_new_dir(dir)?;
    for (name, bytes) in &files.files {
        write_new(&dir.join(name), bytes, false)?;
    }
    Ok(())
}

/// Renders the evidence of a finished ceremony again, into the new folder `out`.
///
/// `source` is the ceremony's runbook or its work folder. A runbook brings the pinned
/// keys; a work folder needs `trust`, a trust file. The bundle is assembled from the work
/// folder's document and signatures and verified against the pinned keys before anything
/// is written. The transcript is cut before its "evidence written" record, so the
/// rendering sees the transcript that the run saw. With the built-in templates and the
/// same tool version, the files are byte-identical to the run's own evidence.
pub fn rerender(
    source: &Path,
    trust: Option<&Path>,
    out: &Path,
    templates: &Templates,
) -> Result<Rerendered, CeremonyError> {
    let (work, trust) = work_and_trust(source, trust)?;
    let document_bytes = read(&work.join(FLEET_KEY_FILE))?;
    let auditor_path = work.join(AUDITOR_SIGNATURE_FILE);
    let auditor = AuditorSignature::from_json_bytes(&read(&auditor_path)?)
        .map_err(|error| invalid(&auditor_path, error))?;
    let operator_path = work.join(OPERATOR_SIGNATURE_FILE);
    let operator = OperatorSignature::from_json_bytes(&read(&operator_path)?)
        .map_err(|error| invalid(&operator_path, error))?;

    let transcript_path = work.join(TRANSCRIPT_FILE);
    // Opening checks the hash chain of every line.
    Transcript::open(&transcript_path)?;
    let transcript = read(&transcript_path)?;
    let (rendered_transcript, recorded) = split_at_evidence_written(&transcript)
        .ok_or_else(|| {
            invalid(
                &transcript_path,
                "the transcript has no \"evidence written\" record, so the ceremony has not finished\nhint: finish the ceremony with `fleet-ceremony run` first",
            )
        })?;

    let bundle_bytes = super::finish::assemble_bundle(&work, &document_bytes, &auditor, &operator)?
        .to_json_bytes();
    let inputs = EvidenceInputs {
        document_bytes,
        bundle_bytes,
        auditor,
        operator,
        trust,
        transcript_bytes: rendered_transcript.to_vec(),
    };
    let report = bundle::verify_bundle_bytes(&inputs.bundle_bytes, &inputs.trust);
    if !super::finish::passed_except_attestation(&report) {
        return Err(CeremonyError::BundleRejected { report });
    }
    let files = render_evidence(&inputs, templates)?;
    let matches = RECORDED_PAGES
        .iter()
        .filter_map(|(name, field)| {
            let expected = recorded.get("details")?.get(*field)?.as_str()?;
            let actual = sha256_hex(files.get(name)?);
            Some(((*name).to_owned(), actual == expected))
        })
        .collect();
    write_evidence(out, &files)?;
    Ok(Rerendered {
        out: out.to_owned(),
        matches,
    })
}

/// Finds the work folder and the pinned keys from a runbook or a work folder.
fn work_and_trust(source: &Path, trust: Option<&Path>) -> Result<(PathBuf, Trust), CeremonyError> {
    if source.is_dir() {
        let trust_path = trust.ok_or_else(|| {
            invalid(
                source,
                "a work folder does not name the auditor and operator\nhint: pass --trust keys-public/trust.yaml, or the runbook instead of the work folder",
            )
        })?;
        let trust = Trust::load(trust_path).map_err(|error| invalid(trust_path, error))?;
        return Ok((source.to_owned(), trust));
    }
    let runbook = runbook::load(source).map_err(|error| invalid(source, error))?;
    let trust = match trust {
        Some(path) => Trust::load(path).map_err(|error| invalid(path, error))?,
        None => trust_from_runbook(&runbook),
    };
    Ok((runbook.outputs.work_dir.clone(), trust))
}

/// Splits the transcript before its first "evidence written" record. Returns the lines
/// before it and the record itself.
fn split_at_evidence_written(transcript: &[u8]) -> Option<(&[u8], Value)> {
    let mut end = 0;
    for line in transcript.split_inclusive(|byte| *byte == b'\n') {
        if let Ok(record) = serde_json::from_slice::<Value>(line)
            && record.get("action").and_then(Value::as_str) == Some(ACTION_EVIDENCE_WRITTEN)
        {
            return Some((&transcript[..end], record));
        }
        end += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_stops_before_evidence_written() {
        let transcript =
            b"{\"action\":\"a\"}\n{\"action\":\"bundle verified\"}\n{\"action\":\"evidence written\",\"details\":{}}\n";
        let (before, record) = split_at_evidence_written(transcript).expect("record");
        assert_eq!(
            before,
            b"{\"action\":\"a\"}\n{\"action\":\"bundle verified\"}\n"
        );
        assert_eq!(record["action"], "evidence written");
    }

    #[test]
    fn split_needs_evidence_written() {
        assert!(split_at_evidence_written(b"{\"action\":\"bundle verified\"}\n").is_none());
    }
}
