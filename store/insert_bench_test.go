package store_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// BenchmarkInsertEvent measures the receiver's commit: 16 goroutines store
// distinct ~3 KB events at once, as 16 concurrent deliveries do. Each op is
// one committed event; ev/s is the ingest ceiling of the store alone.
func BenchmarkInsertEvent(b *testing.B) {
	storetest.EachBenchmark(b, func(b *testing.B, db *store.DB) {
		payload := bytes.Repeat([]byte("x"), 3000)
		var n atomic.Int64
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0))) // 16 goroutines
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ev := newEvent(fmt.Sprintf("evt_bench_%d", n.Add(1)), "cus_1", time.Now())
				ev.Payload = payload
				ok, err := db.InsertEvent(context.Background(), ev)
				require.NoError(b, err)
				require.True(b, ok)
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ev/s")
	})
}
