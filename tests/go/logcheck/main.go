// Command logcheck verifies a fleet-ceremony audit log with golang.org/x/mod/sumdb:
// the checkpoint with note.Open, the tiles with tlog.TileHashReader, and the inclusion
// and consistency proofs listed in a proofs file with tlog.CheckRecord and tlog.CheckTree.
//
// Usage: logcheck <log dir> <verifier key file> <proofs file>
//
// Each line of the proofs file is one of
//
//	inclusion <index> <tree size> <root> <proof hash>...
//	consistency <old size> <new size> <old root> <new root> <proof hash>...
//
// with hashes in standard base64. Inclusion entries are read from the entry bundles.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// dirTiles serves the tlog-tiles layout (tile/<L>/<N>[.p/<W>]) to tlog.TileHashReader,
// which names tiles with the height in the path (tile/8/<L>/<N>[.p/<W>]).
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, t := range tiles {
		path := "tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
		data, err := os.ReadFile(filepath.Join(d.dir, path))
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "logcheck: "+format+"\n", args...)
	os.Exit(1)
}

func parseHashes(fields []string) []tlog.Hash {
	var hashes []tlog.Hash
	for _, f := range fields {
		h, err := tlog.ParseHash(f)
		if err != nil {
			fail("invalid hash %q: %v", f, err)
		}
		hashes = append(hashes, h)
	}
	return hashes
}

func parseInt(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fail("invalid number %q", s)
	}
	return n
}

// entry reads entry i from its entry bundle in a tree of the given size.
func entry(dir string, i, size int64) []byte {
	bundle := i / 256
	width := size - bundle*256
	if width > 256 {
		width = 256
	}
	t := tlog.Tile{H: 8, L: 0, N: bundle, W: int(width)}
	path := "tile/entries/" + strings.TrimPrefix(t.Path(), "tile/8/0/")
	data, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		fail("%v", err)
	}
	for k := int64(0); ; k++ {
		if len(data) < 2 {
			fail("entry %d not found in %s", i, path)
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			fail("truncated bundle %s", path)
		}
		if bundle*256+k == i {
			return data[2 : 2+n]
		}
		data = data[2+n:]
	}
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: logcheck <log dir> <verifier key file> <proofs file>")
	}
	dir := os.Args[1]
	vkey, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fail("verifier key: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		fail("checkpoint has %d lines", len(lines))
	}
	size := parseInt(lines[1])
	root := parseHashes(lines[2:3])[0]
	tree := tlog.Tree{N: size, Hash: root}

	// Every leaf hash in the tiles must match its entry, and the tiles the root.
	reader := tlog.TileHashReader(tree, dirTiles{dir})
	if size > 0 {
		th, err := tlog.TreeHash(size, reader)
		if err != nil {
			fail("TreeHash from tiles: %v", err)
		}
		if th != root {
			fail("tiles hash to %v, checkpoint says %v", th, root)
		}
	}
	for i := int64(0); i < size; i++ {
		leaf := tlog.RecordHash(entry(dir, i, size))
		got, err := reader.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			fail("leaf %d from tiles: %v", i, err)
		}
		if got[0] != leaf {
			fail("leaf %d: tile hash differs from entry hash", i)
		}
	}

	proofs, err := os.Open(os.Args[3])
	if err != nil {
		fail("%v", err)
	}
	scanner := bufio.NewScanner(proofs)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	checked := 0
	for scanner.Scan() {
		f := strings.Fields(scanner.Text())
		switch {
		case len(f) >= 4 && f[0] == "inclusion":
			i, t := parseInt(f[1]), parseInt(f[2])
			th := parseHashes(f[3:4])[0]
			p := tlog.RecordProof(parseHashes(f[4:]))
			if err := tlog.CheckRecord(p, t, th, i, tlog.RecordHash(entry(dir, i, size))); err != nil {
				fail("CheckRecord index %d size %d: %v", i, t, err)
			}
		case len(f) >= 5 && f[0] == "consistency":
			old, t := parseInt(f[1]), parseInt(f[2])
			h := parseHashes(f[3:5])
			p := tlog.TreeProof(parseHashes(f[5:]))
			if err := tlog.CheckTree(p, t, h[1], old, h[0]); err != nil {
				fail("CheckTree %d -> %d: %v", old, t, err)
			}
		default:
			fail("invalid proofs line %q", scanner.Text())
		}
		checked++
	}
	if err := scanner.Err(); err != nil {
		fail("%v", err)
	}
	fmt.Printf("ok size=%d proofs=%d\n", size, checked)
}
