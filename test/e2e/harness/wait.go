package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// pollInterval is the pause between attempts of every polling helper.
const pollInterval = 100 * time.Millisecond

// WaitHTTP polls url with GET until it answers 200 OK and fails the test if
// that does not happen within timeout. Use it for readiness endpoints such
// as /-/ready.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	if err := waitHTTP(url, timeout, nil); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// waitHTTP polls url until 200, the timeout, or exited being closed.
func waitHTTP(url string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		last = getOK(ctx, url)
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited while waiting for %s to answer 200 (last attempt: %v)", url, last)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %s (last attempt: %v)", url, timeout, last)
		case <-time.After(pollInterval):
		}
	}
}

func getOK(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status + ": " + string(body))
	}
	return nil
}
