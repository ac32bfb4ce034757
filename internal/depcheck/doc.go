// Package depcheck holds no code: its test keeps the request path's
// packages (gateway, forward, relabel, limits, batch) free of the cloud
// SDKs (AWS, Google Cloud, Azure, MinIO), which only package bucket, the
// spool's object-store providers, may link. A cloud SDK in forward made
// every build and fuzz binary of the hot path compile some 600 packages it
// never calls.
package depcheck
