// Module tools pins the third-party binaries the e2e tests run (Thanos
// Receive and Query). It is a separate module so the gateway's own go.mod
// never pulls Thanos' dependency tree. Build with `make thanos`.
module github.com/telegate/telegate/test/tools

go 1.26.10

require github.com/thanos-io/thanos v0.42.5

// Copied from github.com/thanos-io/thanos v0.42.5 go.mod: `go build` of a
// module does not honour replace directives of its dependencies, and Thanos
// does not build without these.
replace (
	capnproto.org/go/capnp/v3 => capnproto.org/go/capnp/v3 v3.0.0-alpha.30
	github.com/bradfitz/gomemcache => github.com/themihai/gomemcache v0.0.0-20180902122335-24332e2d58ab
	github.com/sercand/kuberesolver/v4 => github.com/sercand/kuberesolver/v5 v5.1.1
	github.com/vimeo/galaxycache => github.com/thanos-community/galaxycache v0.0.0-20211122094458-3a32041a1f1e
	gopkg.in/alecthomas/kingpin.v2 => github.com/alecthomas/kingpin v1.3.8-0.20210301060133-17f40c25f497
	zenhack.net/go/util => github.com/zenhack/go-util v0.0.0-20231005031245-66f5419c2aea
)
