// Package authn owns cluster identities.
//
// It answers one question for the gateway: may this pull-secret token act for
// this cluster ID, and if so, what Identity does the cluster carry? Sources
// of truth are a static tokens file (StaticTokens) and an upstream authorizer
// speaking the tollbooth protocol used by OpenShift's telemeter-server
// (Upstream), optionally wrapped in a bounded cache (CachingAuthenticator)
// and combined with Chain.
//
// It also issues and verifies the short-lived JWTs handed out by /authorize
// and presented on /upload (Signer); with TelemeterCompat it also accepts,
// and can issue, the tokens of OpenShift's telemeter-server signed with the
// same key, so traffic moves between the two without re-authorization.
// WithLabels adds fixed labels to every identity (telemeter-server's
// --required-label). It decodes the composite bearer used by remote write
// (ParseCompositeToken, BearerToken). Optionally a verified
// TLS client certificate names the cluster (CertAuthenticator), as an
// alternative to the token for remote write.
//
// Every failure is an *Error whose Kind maps to one HTTP status through
// StatusOf. Authentication fails closed: a dependency failure is Unavailable,
// never an allow. Error messages are short, meant for clients, and never
// contain tokens.
package authn
