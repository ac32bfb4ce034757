package config

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestPublicViewValidation(t *testing.T) {
	for doc, want := range map[string]string{
		"public_view: {listen_address: ':9010', aggregations: [{name: v, query: 'max by (version) (cluster_version)'}]}\n":                   "aggregation",
		"public_view: {listen_address: ':9010', k: 1, aggregations: [{name: v, query: 'count(up)'}]}\n":                                      "public_view.k",
		"public_view: {listen_address: ':9010', aggregations: [{name: v, query: 'count by (_id) (up)'}]}\n":                                  "installation label",
		"public_view: {listen_address: ':9010'}\n":                                                                                           "nothing to publish",
		"forward: {url: 'http://x/api/v1/receive'}\npublic_view: {listen_address: ':9010', aggregations: [{name: v, query: 'count(up)'}]}\n": "query_url",
	} {
		c, err := Parse([]byte(doc), "gw.yaml", fstest.MapFS{}, "")
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %s", doc, err, want)
		}
	}
	c, err := Parse([]byte("public_view: {listen_address: ':9010', aggregations: [{name: v, query: 'count by (version) (cluster_version)'}]}\n"), "gw.yaml", fstest.MapFS{}, "")
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
}
