package admin_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// chromium returns the Chromium the page's test drives. Without one it
// skips, unless CI=true: .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium on PATH: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("no Chromium on PATH: the admin page's test runs in one (apt-get install chromium)")
	return ""
}

// browser returns a headless Chromium tab, closed when t ends, that accepts
// every confirm() the page asks.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start Chromium")
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			// Answered from another goroutine than the one receiving events.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		}
	}()
	return ctx
}

// The page replays and discards the dead events an operator selects, with
// the reason given, through the API: in a browser, as an operator would.
func TestPageReplaysAndDiscardsSelectedDeadEvents(t *testing.T) {
	t.Parallel()
	tab := browser(t)
	b := setup(t, storetest.SQLite(t))
	srv := httptest.NewServer(b.h)
	t.Cleanup(srv.Close)
	box := func(id string) chromedp.CSS { return chromedp.CSS(`#dead input[type=checkbox][value="` + id + `"]`) }
	result := func(text string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](`document.getElementById("result").textContent === ` + strconv.Quote(text))
	}
	ctx, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()

	storetest.SeedDead(t, b.db, "evt_many", "invoice.paid", 100, now.Add(-time.Hour), func(int) string { return "cus_many" })
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/admin/"),
		chromedp.SendKeys(chromedp.ID("token"), "tok€"), // fetch cannot send it in a header
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.ID("refused")),
		chromedp.Poll[chromedp.Void](`(document.getElementById("token").value = "") === ""`),
		chromedp.Poll[chromedp.Void](`(document.getElementById("refused").hidden = true)`),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.ID("refused")),
		chromedp.Poll[chromedp.Void](`(document.getElementById("token").value = "") === ""`),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("dead-more").textContent.startsWith("Showing the newest 100 of 102 dead events")`),
		chromedp.WaitVisible(chromedp.CSS(`#dead input[type=checkbox]`)),
		chromedp.Click(chromedp.CSS(`button[data-action="replay"]`)),
		result("Select dead events first."),
		chromedp.Click(box("evt_3")),
		chromedp.Click(chromedp.CSS(`button[data-action="replay"]`)),
		result("Give a reason: it is kept in each event's history."),
		chromedp.SendKeys(chromedp.ID("reason"), "handler fixed"),
		chromedp.Click(chromedp.CSS(`button[data-action="dry-run"]`)),
		result("dry run: would replay 1 of 1"),
		chromedp.Click(chromedp.CSS(`button[data-action="replay"]`)),
		result("replayed 1 of 1"),
		chromedp.WaitNotPresent(box("evt_3")),
		chromedp.Click(box("evt_4")),
		chromedp.Click(chromedp.CSS(`button[data-action="discard"]`)),
		result("discarded 1"),
		chromedp.WaitNotPresent(box("evt_4")),
	))

	for id, want := range map[string]struct {
		status  store.Status
		outcome string
	}{"evt_3": {store.StatusPending, store.OutcomeReplayed}, "evt_4": {store.StatusDiscarded, store.OutcomeDiscarded}} {
		ev, err := b.db.Event(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, want.status, ev.Status, id)
		attempts, err := b.db.Attempts(context.Background(), id)
		require.NoError(t, err)
		last := attempts[len(attempts)-1]
		require.Equal(t, want.outcome, last.Outcome, id)
		require.Equal(t, "admin-api", last.Actor, id)
		require.Contains(t, last.Detail, "handler fixed", id)
	}
}
