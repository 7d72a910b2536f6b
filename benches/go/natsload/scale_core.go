package main

// Core NATS at scale: many connections (scale-conns) and many subscriptions (scale-subs),
// measured by the server's resident memory and, for subscriptions, the delivery rate to
// random subjects among them.

import (
	"flag"
	"fmt"
	"math/rand"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

var (
	scaleConns = flag.Int("conns", 10000, "scale-conns: client connections")
	scaleSubs  = flag.Int("sub-count", 1000000, "scale-subs: subscriptions")
)

func init() {
	scenarios["scale-conns"] = runScaleConns
	scenarios["scale-subs"] = runScaleSubs
}

// rssKb is the server's resident memory in KiB (0 when unknown).
func rssKb(pid int) float64 {
	mb, _ := procStatusMb(pid, "VmRSS")
	return mb * 1024
}

func runScaleConns(c config) (string, error) {
	n := *scaleConns
	before := rssKb(c.serverPid)
	conns := make([]*nats.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		nc, err := nats.Connect("nats://"+c.server, nats.MaxReconnects(0), nats.Timeout(10*time.Second),
			nats.NoCallbacksAfterClientClose())
		if err != nil {
			return "", fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, nc)
	}
	for _, nc := range conns {
		if err := nc.Flush(); err != nil {
			return "", err
		}
	}
	el := time.Since(t0).Seconds()
	time.Sleep(500 * time.Millisecond)
	after := rssKb(c.serverPid)
	return fmt.Sprintf("conns=%d connect_s=%.2f conns_per_sec=%.0f rss_before_mb=%.1f rss_after_mb=%.1f kb_per_conn=%.1f",
		n, el, float64(n)/el, before/1024, after/1024, (after-before)/float64(n)), nil
}

func runScaleSubs(c config) (string, error) {
	n := *scaleSubs
	before := rssKb(c.serverPid)
	sc, err := connect(c, "natsload-subs")
	if err != nil {
		return "", err
	}
	defer sc.Close()
	var got int64
	t0 := time.Now()
	for i := 0; i < n; i++ {
		// One literal subject per subscription, under 1,000 prefixes (a realistic tree).
		subj := fmt.Sprintf("scale.%d.%d.evt", i%1000, i)
		if _, err := sc.Subscribe(subj, func(*nats.Msg) { atomic.AddInt64(&got, 1) }); err != nil {
			return "", fmt.Errorf("subscription %d: %w", i, err)
		}
		if i%10000 == 9999 {
			if err := sc.FlushTimeout(c.timeout); err != nil {
				return "", err
			}
		}
	}
	if err := sc.FlushTimeout(c.timeout); err != nil {
		return "", err
	}
	subEl := time.Since(t0).Seconds()
	time.Sleep(500 * time.Millisecond)
	after := rssKb(c.serverPid)
	pc, err := connect(c, "natsload-subs-pub")
	if err != nil {
		return "", err
	}
	defer pc.Close()
	msgs := c.msgs
	payload := make([]byte, c.size)
	rng := rand.New(rand.NewSource(1))
	a := snapshot(c.serverPid)
	for k := 0; k < msgs; k++ {
		i := rng.Intn(n)
		if err := pc.Publish(fmt.Sprintf("scale.%d.%d.evt", i%1000, i), payload); err != nil {
			return "", err
		}
	}
	if err := pc.FlushTimeout(c.timeout); err != nil {
		return "", err
	}
	deadline := time.Now().Add(c.timeout)
	for atomic.LoadInt64(&got) < int64(msgs) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b := snapshot(c.serverPid)
	if got != int64(msgs) {
		return "", fmt.Errorf("delivered %d of %d", got, msgs)
	}
	el := b.at.Sub(a.at).Seconds()
	return fmt.Sprintf("subscriptions=%d subscribe_s=%.2f subs_per_sec=%.0f rss_before_mb=%.1f rss_after_mb=%.1f bytes_per_sub=%.0f random_subject_msgs=%d delivered_per_sec=%.0f",
		n, subEl, float64(n)/subEl, before/1024, after/1024, (after-before)*1024/float64(n), msgs, float64(msgs)/el) +
		cpuFields(c, a, b, msgs), nil
}
