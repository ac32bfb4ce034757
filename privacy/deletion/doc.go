// Package deletion keeps the requests of installations to have all their
// data removed: durably, as one object per installation on an objstore
// bucket every gateway replica shares, with their state (pending, done)
// and an audit trail. Replicas refuse further data of a requested ID
// (403 deleted) and re-read the bucket every minute, so a request made at
// one replica holds at all of them within a minute.
//
// It does not delete data itself: the gateway's executor does (the
// embedded TSDB's series in single-binary mode, the spooled objects when
// forwarding) and, for long-term storage in Thanos, RewriteConfig exports
// the pending requests as the deletion config of Thanos' own block
// rewrite tool (thanos tools bucket rewrite), applied by a documented job
// that marks them done.
package deletion
