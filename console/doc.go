// Package console is the gateway's web console on the internal listener:
// the fleet overview (/), the allowlist catalogue (/allowlist), "why is
// my metric not arriving?" (/diagnose) and the installations
// (/installations, /installations/{id}). Every page is server-rendered
// with html/template from the gateway's own state (gateway.Fleet,
// RuleActivity, Installation, Diagnose: never by scraping /metrics), its
// CSS embedded in the binary (no CDN, no JavaScript), and has a JSON twin:
// the same URL with ?format=json, or under /api/console/. docs/console.md
// lists them.
//
// The console depends on the gateway and what it reports; nothing on the
// request path depends on the console.
package console
