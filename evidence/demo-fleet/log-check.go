// Command bundlecheck checks the audit log proof inside a fleet-ceremony bundle with
// golang.org/x/mod/sumdb only: note.Open opens the checkpoint with the log's verifier key,
// the log entry is rebuilt from the bundle's auditor fields as docs/bundle-format.md
// specifies, and tlog.CheckRecord checks its inclusion proof.
//
// Usage: bundlecheck <bundle.json> <verifier key file>
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type bundle struct {
	Auditor struct {
		Ciphersuite uint16 `json:"ciphersuite"`
		Namespace   string `json:"namespace"`
		TimestampMs uint64 `json:"timestamp_ms"`
		Epoch       uint64 `json:"epoch"`
		Digest      string `json:"digest"`
		Signature   string `json:"signature"`
		KeyID       string `json:"key_id"`
	} `json:"auditor"`
	Checkpoint     string `json:"checkpoint"`
	InclusionProof struct {
		Index    int64    `json:"index"`
		TreeSize int64    `json:"tree_size"`
		Hashes   []string `json:"hashes"`
	} `json:"inclusion_proof"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bundlecheck: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: bundlecheck <bundle.json> <verifier key file>")
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		fail("bundle: %v", err)
	}
	vkey, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open([]byte(b.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		fail("note.Open: %v", err)
	}

	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 || lines[0] != verifier.Name() {
		fail("checkpoint origin is not %s", verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint root: %v", err)
	}
	if b.InclusionProof.TreeSize != size {
		fail("proof tree size %d differs from checkpoint size %d", b.InclusionProof.TreeSize, size)
	}

	signature, err := base64.StdEncoding.DecodeString(b.Auditor.Signature)
	if err != nil {
		fail("auditor signature: %v", err)
	}
	entry := fmt.Sprintf("fleet-ceremony log entry v1\nnamespace %s\nepoch %d\ndigest %s\ntimestamp_ms %d\nciphersuite %d\nauditor_key_id %s\nauditor_signature %s\n",
		b.Auditor.Namespace, b.Auditor.Epoch, b.Auditor.Digest, b.Auditor.TimestampMs,
		b.Auditor.Ciphersuite, b.Auditor.KeyID, base64.StdEncoding.EncodeToString(signature))

	var proof tlog.RecordProof
	for _, text := range b.InclusionProof.Hashes {
		h, err := tlog.ParseHash(text)
		if err != nil {
			fail("proof hash %q: %v", text, err)
		}
		proof = append(proof, h)
	}
	leaf := tlog.RecordHash([]byte(entry))
	if err := tlog.CheckRecord(proof, size, root, b.InclusionProof.Index, leaf); err != nil {
		fail("tlog.CheckRecord: %v", err)
	}
	fmt.Printf("ok: entry %d of %d in %s\n", b.InclusionProof.Index, size, verifier.Name())
}
