// Package backup is the on-disk format of a cairn backup: a JSON manifest
// and length-prefixed data files, each named with its SHA-256 in the
// manifest. It holds no policy about how a backup is taken; it is the
// parser and writer that both `cairn backup` and `cairn restore` share.
//
// # Why a package of its own
//
// A backup directory is input from disk that may be truncated, corrupt or
// hand-edited. Everything that reads it goes through ParseManifest and
// Reader, which reject non-canonical or corrupt input with clear errors
// and never panic (both are fuzzed), and VerifyChain/VerifyFiles, which
// check every checksum of a whole incremental chain before a restore
// writes anything.
//
// # Invariants
//
//  1. A manifest is the last file written, by temp file + fsync + rename
//     + directory fsync (WriteFileAtomic): a directory without a manifest
//     is an interrupted backup, never mistaken for a complete one.
//  2. Data files hold records in strictly increasing key order, so a
//     file has exactly one encoding (canonical) and a restore can stream
//     it in bounded memory.
//  3. An incremental manifest names its parent by the SHA-256 of the
//     parent's manifest bytes and the parent's point in time, which is
//     strictly smaller than its own.
package backup
