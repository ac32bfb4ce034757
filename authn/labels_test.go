package authn

import (
	"context"
	"reflect"
	"testing"
)

func TestWithLabels(t *testing.T) {
	shared := map[string]string{ClusterIDLabel: "c1", "region": "from-source"}
	src := AuthenticatorFunc(func(_ context.Context, token, clusterID string) (Identity, error) {
		if token != "good" {
			return Identity{}, NewUnauthorized("unknown token")
		}
		return Identity{ClusterID: clusterID, AccountID: "acct", Labels: shared}, nil
	})
	a := WithLabels(src, map[string]string{"region": "eu-west", "env": "prod", ClusterIDLabel: "not-this"})
	id, err := a.Authenticate(context.Background(), "good", "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ClusterIDLabel: "c1", "region": "eu-west", "env": "prod"}
	if !reflect.DeepEqual(id.Labels, want) || id.AccountID != "acct" {
		t.Fatalf("identity %+v, want labels %v", id, want)
	}
	if shared["region"] != "from-source" {
		t.Fatal("WithLabels modified the source's labels")
	}
	if _, err := a.Authenticate(context.Background(), "bad", "c1"); KindOf(err) != Unauthorized {
		t.Fatalf("refusal: %v", err)
	}
	if WithLabels(src, nil) == nil {
		t.Fatal("no labels: want the source back")
	}
}
