// Command proofbench times the check that benches/log.rs times in Rust, with
// golang.org/x/mod/sumdb: note.Open of a checkpoint with its verifier key, parsing of the
// checkpoint's size and root, and tlog.CheckRecord of an inclusion proof.
//
// Usage: proofbench <folder> [iterations]
//
// The folder holds `checkpoint`, `verifier.key` and `proof.txt` (one line: index, tree
// size, leaf hash and proof hashes, hashes in standard base64), as benches/log.rs writes
// them. Build offline: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "proofbench: "+format+"\n", args...)
	os.Exit(1)
}

func read(dir, name string) []byte {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		fail("%v", err)
	}
	return data
}

func parseHash(text string) tlog.Hash {
	h, err := tlog.ParseHash(text)
	if err != nil {
		fail("invalid hash %q: %v", text, err)
	}
	return h
}

// check opens the checkpoint and verifies the inclusion proof against its root.
func check(msg []byte, verifiers note.Verifiers, index int64, leaf tlog.Hash, proof tlog.RecordProof) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 3 {
		fail("checkpoint has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("invalid tree size %q", lines[1])
	}
	root := parseHash(lines[2])
	if err := tlog.CheckRecord(proof, size, root, index, leaf); err != nil {
		fail("tlog.CheckRecord: %v", err)
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: proofbench <folder> [iterations]")
	}
	dir := os.Args[1]
	iterations := 10000
	if len(os.Args) > 2 {
		n, err := strconv.Atoi(os.Args[2])
		if err != nil || n <= 0 {
			fail("invalid iteration count %q", os.Args[2])
		}
		iterations = n
	}

	verifier, err := note.NewVerifier(strings.TrimSpace(string(read(dir, "verifier.key"))))
	if err != nil {
		fail("verifier key: %v", err)
	}
	verifiers := note.VerifierList(verifier)
	msg := read(dir, "checkpoint")
	fields := strings.Fields(string(read(dir, "proof.txt")))
	if len(fields) < 3 {
		fail("proof.txt has %d fields", len(fields))
	}
	index, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		fail("invalid index %q", fields[0])
	}
	leaf := parseHash(fields[2])
	var proof tlog.RecordProof
	for _, field := range fields[3:] {
		proof = append(proof, parseHash(field))
	}

	start := time.Now()
	for i := 0; i < iterations; i++ {
		check(msg, verifiers, index, leaf, proof)
	}
	both := time.Since(start)

	start = time.Now()
	size, _ := strconv.ParseInt(fields[1], 10, 64)
	n, _ := note.Open(msg, verifiers)
	root := parseHash(strings.Split(n.Text, "\n")[2])
	for i := 0; i < iterations; i++ {
		if err := tlog.CheckRecord(proof, size, root, index, leaf); err != nil {
			fail("tlog.CheckRecord: %v", err)
		}
	}
	proofOnly := time.Since(start)

	perCheck := func(d time.Duration) float64 {
		return float64(d.Nanoseconds()) / 1000 / float64(iterations)
	}
	fmt.Printf("| open checkpoint + verify inclusion proof (Go %s) | %.1f |\n", "x/mod sumdb", perCheck(both))
	fmt.Printf("| verify inclusion proof only (Go x/mod sumdb) | %.2f |\n", perCheck(proofOnly))
}
