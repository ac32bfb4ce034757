// Package batch holds the one in-memory representation that every ingest
// protocol decodes into and every later stage (allowlist, relabel, limits,
// forward) works on. It is a leaf package: it imports nothing of telegate.
//
// Strings in a Batch may alias the decompressed request buffer the decoder
// walked (zero-copy); they are valid until the Batch is Reset or returned to
// the pool. Anything that must outlive the request must copy them.
package batch
