//go:build reliability

package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderhook/orderhook/store/storetest"
)

// binary is the path of the orderhook binary built by TestMain.
var binary string

// TestMain builds the orderhook binary once for all tests, from the module
// the suite belongs to, without the race detector (the tests themselves run
// with it).
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(storetest.EnvURL) == "" && os.Getenv("CI") != "true" {
		return m.Run() // every test skips: no need for a binary
	}
	dir, err := os.MkdirTemp("", "orderhook-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "orderhook")
	build := exec.Command("go", "build", "-o", binary, "./cmd/orderhook")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability: build orderhook:", err)
		return 1
	}
	return m.Run()
}

// size is the scale of every scenario: reduced for .ci/run, full for
// `make reliability`.
type size struct {
	name            string
	crashCustomers  int // customers of the crash scenario (~10 events each)
	crashMinEvents  int // the minimum of crash events
	crashMinKills   int // SIGKILLs at least, even when the deliveries end sooner
	replicaCustomer int // customers of the replica scenario
	outageCustomers int // customers of the outage scenario
	outage          time.Duration
	stormEvents     int           // distinct events of the duplicate storm
	stormCopies     int           // deliveries of each storm event
	hostile         int           // generated bad requests, at least
	hugeBody        int64         // bytes of the largest body sent
	deadline        time.Duration // limit on each scenario's deliveries
}

func currentSize(t *testing.T) size {
	t.Helper()
	switch s := os.Getenv("ORDERHOOK_RELIABILITY_SIZE"); s {
	case "", "reduced":
		return size{name: "reduced", crashCustomers: 320, crashMinEvents: 3000, crashMinKills: 5,
			replicaCustomer: 150, outageCustomers: 100, outage: 5 * time.Second,
			stormEvents: 100, stormCopies: 50, hostile: 1000, hugeBody: 100 << 20, deadline: 4 * time.Minute}
	case "full":
		return size{name: "full", crashCustomers: 1010, crashMinEvents: 10000, crashMinKills: 15,
			replicaCustomer: 500, outageCustomers: 300, outage: 10 * time.Second,
			stormEvents: 100, stormCopies: 50, hostile: 5000, hugeBody: 100 << 20, deadline: 15 * time.Minute}
	default:
		t.Fatalf("ORDERHOOK_RELIABILITY_SIZE=%q: want reduced or full", s)
		return size{}
	}
}
