package main

// JetStream at scale: many streams and consumers created through the official client
// (js-scale-create), then, after the script restarts the server, the time until the server
// reports them all again (js-scale-check).

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

var (
	scaleStreams   = flag.Int("streams", 10000, "js-scale-*: streams")
	scaleConsumers = flag.Int("consumers", 100000, "js-scale-*: durable consumers, spread over the streams")
	scaleWorkers   = flag.Int("workers", 8, "js-scale-create: API requests in flight")
	scaleSinceNs   = flag.Int64("since-ns", 0, "js-scale-check: when the server was started (Unix ns)")
)

func init() {
	scenarios["js-scale-create"] = runScaleCreate
	scenarios["js-scale-check"] = runScaleCheck
	scenarios["js-recover-check"] = runRecoverCheck
}

func rssMb(pid int) string { return memField(pid, "VmRSS", "server_rss_mb") }

// parallel runs f(0..n-1) on *scaleWorkers goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	var next int64 = -1
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < *scaleWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= n || firstErr.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

func runScaleCreate(c config) (string, error) {
	nc, js, err := jsConnect(c, "natsload-scale")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	n, m := *scaleStreams, *scaleConsumers
	a := snapshot(c.serverPid)
	err = parallel(n, func(i int) error {
		_, err := js.AddStream(&nats.StreamConfig{
			Name:     fmt.Sprintf("SCALE_%06d", i),
			Subjects: []string{fmt.Sprintf("scale.%d.>", i)},
			Storage:  nats.FileStorage,
		})
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	b := snapshot(c.serverPid)
	streamRss := rssMb(c.serverPid)
	err = parallel(m, func(j int) error {
		_, err := js.AddConsumer(fmt.Sprintf("SCALE_%06d", j%n), &nats.ConsumerConfig{
			Durable:   fmt.Sprintf("C%07d", j),
			AckPolicy: nats.AckExplicitPolicy,
		})
		if err != nil {
			return fmt.Errorf("consumer %d: %w", j, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	d := snapshot(c.serverPid)
	sEl, cEl := b.at.Sub(a.at).Seconds(), d.at.Sub(b.at).Seconds()
	out := fmt.Sprintf("streams=%d consumers=%d stream_create_s=%.2f streams_per_sec=%.0f consumer_create_s=%.2f consumers_per_sec=%.0f server_cpu_s=%.2f",
		n, m, sEl, float64(n)/sEl, cEl, float64(m)/cEl, d.server-a.server)
	if streamRss != "" {
		out += strings.Replace(streamRss, "server_rss_mb", "rss_after_streams_mb", 1)
	}
	return out + rssMb(c.serverPid), nil
}

// pollReady connects again and again until check reports the server ready (a result
// line) or the timeout passes; check's other answers say what is missing so far.
func pollReady(c config, check func(nats.JetStreamContext) (string, bool, error)) (string, error) {
	deadline := time.Now().Add(c.timeout)
	var last string
	for time.Now().Before(deadline) {
		nc, err := nats.Connect("nats://"+c.server, nats.MaxReconnects(0), nats.Timeout(2*time.Second))
		if err != nil {
			last = err.Error()
			time.Sleep(20 * time.Millisecond)
			continue
		}
		js, err := nc.JetStream()
		var out string
		var ready bool
		if err == nil {
			out, ready, err = check(js)
		}
		nc.Close()
		if err == nil && ready {
			readyS := time.Since(time.Unix(0, *scaleSinceNs)).Seconds()
			u := snapshot(c.serverPid)
			return fmt.Sprintf("%s ready_s=%.2f server_cpu_s=%.2f", out, readyS, u.server) + rssMb(c.serverPid), nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = out
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("not ready within the timeout: %s", last)
}

func runScaleCheck(c config) (string, error) {
	n, m := *scaleStreams, *scaleConsumers
	return pollReady(c, func(js nats.JetStreamContext) (string, bool, error) {
		info, err := js.AccountInfo()
		if err != nil {
			return "", false, err
		}
		if info.Streams == n && info.Consumers == m {
			return fmt.Sprintf("streams=%d consumers=%d", n, m), true, nil
		}
		return fmt.Sprintf("%d streams and %d consumers so far", info.Streams, info.Consumers), false, nil
	})
}

// runRecoverCheck waits, after a restart at --since-ns, until stream BENCH (filled by
// js-pub-async) reports --msgs messages and its last one can be read back.
func runRecoverCheck(c config) (string, error) {
	return pollReady(c, func(js nats.JetStreamContext) (string, bool, error) {
		si, err := js.StreamInfo("BENCH")
		if err != nil {
			return "", false, err
		}
		if si.State.Msgs != uint64(c.msgs) {
			return fmt.Sprintf("%d messages so far", si.State.Msgs), false, nil
		}
		if _, err := js.GetMsg("BENCH", si.State.LastSeq); err != nil {
			return "", false, err
		}
		return fmt.Sprintf("msgs=%d", si.State.Msgs), true, nil
	})
}
