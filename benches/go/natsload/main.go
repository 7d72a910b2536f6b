// natsload drives a NATS server with the official Go client (nats.go) and prints one
// machine-readable RESULT line, the same keys as petrel-load, so benches/compare.sh can
// run either tool. It is built in GOPATH mode against Debian's nats.go (no module proxy):
//
//	bash benches/go/build.sh            # -> target/natsload
//	target/natsload -scenario pubsub -server 127.0.0.1:4222 -server-pid $(pidof petrel)
//
// Scenarios: pub (publish only), pubsub, fanout, queue, reqrep, js-pub-sync, js-pub-async,
// js-consume. Defaults: 16-byte payloads, 2,000,000 messages for the core modes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

type config struct {
	scenario  string
	server    string
	msgs      int
	size      int
	subs      int
	serverPid int
	timeout   time.Duration
	inflight  int
	stall     time.Duration
	batch     int
	window    int
	warmup    int
	replicas  int
}

func main() {
	var c config
	flag.StringVar(&c.scenario, "scenario", "pubsub", "pub|pubsub|fanout|queue|reqrep|js-pub-sync|js-pub-async|js-consume|js-ttl|js-counter|js-atomic")
	flag.StringVar(&c.server, "server", "127.0.0.1:4222", "host:port")
	flag.IntVar(&c.msgs, "msgs", 0, "messages (default: 2000000 core, 20000 reqrep/js-pub-sync, 200000 js-pub-async/js-consume)")
	flag.IntVar(&c.size, "size", 16, "payload bytes")
	flag.IntVar(&c.subs, "subs", 4, "fanout subscribers / queue members")
	flag.IntVar(&c.serverPid, "server-pid", 0, "server pid, for its CPU time and RSS")
	timeoutSecs := flag.Int("timeout", 60, "seconds allowed for the timed part")
	flag.IntVar(&c.inflight, "inflight", 256, "js-pub-async: publishes without their PubAck")
	flag.DurationVar(&c.stall, "stall-wait", 0, "js-pub-async: how long a publish may wait for room among the in-flight ones (0: nats.go's 200ms)")
	flag.IntVar(&c.batch, "batch", 256, "js-consume: messages per fetch; js-atomic: messages per batch")
	flag.IntVar(&c.window, "window", 8<<20, "bytes the publisher may run ahead of the slowest subscriber")
	flag.IntVar(&c.warmup, "warmup", 1000, "reqrep/js-pub-sync: untimed round trips first")
	flag.IntVar(&c.replicas, "replicas", 1, "js scenarios: the stream's num_replicas")
	flag.Parse()
	c.timeout = time.Duration(*timeoutSecs) * time.Second
	if c.msgs == 0 {
		switch c.scenario {
		case "reqrep", "js-pub-sync":
			c.msgs = 20000
		case "js-counter":
			c.msgs = 20000
		case "js-pub-async", "js-consume", "js-ttl", "js-atomic":
			c.msgs = 200000
		default:
			c.msgs = 2000000
		}
	}
	if c.msgs < 1 || c.size < 0 || c.subs < 1 || c.inflight < 1 || c.batch < 1 || c.replicas < 1 || c.replicas > 5 {
		fail(c, errors.New("msgs, subs, inflight and batch must be positive, size not negative, replicas 1-5"))
	}
	run, ok := scenarios[c.scenario]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q\n", c.scenario)
		os.Exit(2)
	}
	res, err := run(c)
	if err != nil {
		fail(c, err)
	}
	fmt.Printf("RESULT scenario=%s status=ok msgs=%d size=%d tool=nats.go %s\n", c.scenario, c.msgs, c.size, res)
}

var scenarios = map[string]func(config) (string, error){
	"pub":          runThroughput,
	"pubsub":       runThroughput,
	"fanout":       runThroughput,
	"queue":        runThroughput,
	"reqrep":       runReqRep,
	"js-pub-sync":  runJsSync,
	"js-pub-async": runJsAsync,
	"js-consume":   runJsConsume,
	"js-ttl":       runJsTTL,
	"js-counter":   runJsCounter,
	"js-atomic":    runJsAtomic,
}

func fail(c config, err error) {
	text := strings.ReplaceAll(err.Error(), " ", "_")
	fmt.Printf("RESULT scenario=%s status=failed error=%s\n", c.scenario, text)
	os.Exit(1)
}

func connect(c config, name string) (*nats.Conn, error) {
	return nats.Connect("nats://"+c.server, nats.Name(name), nats.MaxReconnects(0),
		nats.ReconnectBufSize(-1), nats.Timeout(5*time.Second))
}

// ---------------------------------------------------------------------------------------
// CPU and memory accounting
// ---------------------------------------------------------------------------------------

// usage is a snapshot of the CPU time used so far.
type usage struct {
	at                  time.Time
	server, tool, total float64 // seconds
	steal               float64
}

const clkTck = 100.0 // USER_HZ, fixed at 100 for /proc on Linux

func snapshot(pid int) usage {
	u := usage{at: time.Now()}
	if pid > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				f := strings.Fields(s[i+1:])
				if len(f) > 13 {
					ut, _ := strconv.ParseFloat(f[11], 64)
					st, _ := strconv.ParseFloat(f[12], 64)
					u.server = (ut + st) / clkTck
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.tool = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line := strings.SplitN(string(b), "\n", 2)[0]
		f := strings.Fields(line)
		if len(f) > 8 && f[0] == "cpu" {
			var busy float64
			for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
				v, _ := strconv.ParseFloat(f[i], 64)
				busy += v
			}
			st, _ := strconv.ParseFloat(f[8], 64)
			u.total = busy / clkTck
			u.steal = st / clkTck
		}
	}
	return u
}

// procStatusMb reads one memory line (VmRSS, VmHWM) of /proc/<pid>/status in MiB; ok is
// false when it cannot.
func procStatusMb(pid int, key string) (mb float64, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key+":" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}

// memField formats a memory line as a RESULT field ("" when unknown).
func memField(pid int, key, name string) string {
	if mb, ok := procStatusMb(pid, key); ok {
		return fmt.Sprintf(" %s=%.1f", name, mb)
	}
	return ""
}

func peakRssMb(pid int) string { return memField(pid, "VmHWM", "server_peak_rss_mb") }

// cpuFields reports the server's CPU per counted message and the context figures.
func cpuFields(c config, a, b usage, counted int) string {
	el := b.at.Sub(a.at).Seconds()
	srv := b.server - a.server
	tool := b.tool - a.tool
	other := (b.total - a.total) - srv - tool
	if other < 0 {
		other = 0
	}
	out := fmt.Sprintf(" tool_cpu_util=%.2f other_cpu_s=%.2f steal_s=%.2f", tool/el, other, b.steal-a.steal)
	if c.serverPid > 0 && counted > 0 {
		out = fmt.Sprintf(" server_cpu_s=%.2f cpu_ns_per_msg=%.0f server_cpu_util=%.2f",
			srv, srv*1e9/float64(counted), srv/el) + out + peakRssMb(c.serverPid)
	}
	return out
}

func latencyFields(prefix string, lat []time.Duration) string {
	if len(lat) == 0 {
		return ""
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Nanoseconds()) / 1e3
	}
	return fmt.Sprintf(" %sp50_us=%.1f %sp90_us=%.1f %sp99_us=%.1f %sp999_us=%.1f %smax_us=%.1f",
		prefix, q(0.5), prefix, q(0.9), prefix, q(0.99), prefix, q(0.999), prefix, q(1))
}

// ---------------------------------------------------------------------------------------
// Core modes: pub, pubsub, fanout, queue
// ---------------------------------------------------------------------------------------

func runThroughput(c config) (string, error) {
	subs, queue := 0, ""
	switch c.scenario {
	case "pubsub":
		subs = 1
	case "fanout":
		subs = c.subs
	case "queue":
		subs, queue = c.subs, "workers"
	}
	expected := int64(c.msgs) // per subscriber, or for the whole group
	total := int64(c.msgs) * int64(subs)
	if queue != "" {
		total = int64(c.msgs)
	}
	counts := make([]int64, subs)
	var delivered int64
	done := make(chan struct{})
	var once sync.Once
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := 0; i < subs; i++ {
		nc, err := connect(c, fmt.Sprintf("natsload-sub-%d", i))
		if err != nil {
			return "", err
		}
		conns = append(conns, nc)
		i := i
		handler := func(m *nats.Msg) {
			atomic.AddInt64(&counts[i], 1)
			if atomic.AddInt64(&delivered, 1) == total {
				once.Do(func() { close(done) })
			}
		}
		var sub *nats.Subscription
		if queue != "" {
			sub, err = nc.QueueSubscribe("bench.load", queue, handler)
		} else {
			sub, err = nc.Subscribe("bench.load", handler)
		}
		if err != nil {
			return "", err
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return "", err
		}
		if err := nc.Flush(); err != nil {
			return "", err
		}
	}
	pc, err := connect(c, "natsload-pub")
	if err != nil {
		return "", err
	}
	conns = append(conns, pc)
	payload := make([]byte, c.size)
	window := int64(c.window / (c.size + 40))
	if window < 1000 {
		window = 1000
	}
	slowest := func() int64 {
		if queue != "" {
			return atomic.LoadInt64(&delivered)
		}
		m := int64(-1)
		for i := range counts {
			if v := atomic.LoadInt64(&counts[i]); m < 0 || v < m {
				m = v
			}
		}
		return m
	}
	deadline := time.Now().Add(c.timeout)
	a := snapshot(c.serverPid)
	for n := int64(0); n < int64(c.msgs); n++ {
		if err := pc.Publish("bench.load", payload); err != nil {
			return "", err
		}
		if subs > 0 && c.window > 0 && n%1024 == 1023 {
			for n-slowest() > window {
				if time.Now().After(deadline) {
					return "", fmt.Errorf("timeout with %d of %d delivered", atomic.LoadInt64(&delivered), total)
				}
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
	if err := pc.FlushTimeout(c.timeout); err != nil {
		return "", err
	}
	pubEnd := time.Now()
	if subs > 0 {
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			return "", fmt.Errorf("timeout with %d of %d delivered", atomic.LoadInt64(&delivered), total)
		}
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	if queue != "" && atomic.LoadInt64(&delivered) != expected {
		return "", fmt.Errorf("queue group received %d of %d", delivered, expected)
	}
	counted := int(total)
	if subs == 0 {
		counted = c.msgs
	}
	out := fmt.Sprintf("subs=%d delivered=%d elapsed_s=%.4f published_per_sec=%.0f delivered_per_sec=%.0f mb_per_sec=%.1f",
		subs, total, el, float64(c.msgs)/pubEnd.Sub(a.at).Seconds(), float64(total)/el,
		float64(int64(c.size)*max64(total, int64(c.msgs)))/el/1e6)
	return out + cpuFields(c, a, b, counted), nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// ---------------------------------------------------------------------------------------
// Request/reply
// ---------------------------------------------------------------------------------------

func runReqRep(c config) (string, error) {
	rc, err := connect(c, "natsload-responder")
	if err != nil {
		return "", err
	}
	defer rc.Close()
	reply := make([]byte, c.size)
	if _, err := rc.Subscribe("bench.svc", func(m *nats.Msg) { _ = m.Respond(reply) }); err != nil {
		return "", err
	}
	if err := rc.Flush(); err != nil {
		return "", err
	}
	nc, err := connect(c, "natsload-requester")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	payload := make([]byte, c.size)
	for i := 0; i < c.warmup; i++ {
		if _, err := nc.Request("bench.svc", payload, 5*time.Second); err != nil {
			return "", fmt.Errorf("warmup request: %w", err)
		}
	}
	lat := make([]time.Duration, 0, c.msgs)
	a := snapshot(c.serverPid)
	for i := 0; i < c.msgs; i++ {
		t0 := time.Now()
		if _, err := nc.Request("bench.svc", payload, 5*time.Second); err != nil {
			return "", fmt.Errorf("request %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	out := fmt.Sprintf("elapsed_s=%.4f req_per_sec=%.0f", el, float64(c.msgs)/el) + latencyFields("", lat)
	out += cpuFields(c, a, b, 2*c.msgs)
	if c.serverPid > 0 {
		out += fmt.Sprintf(" cpu_ns_per_req=%.0f", (b.server-a.server)*1e9/float64(c.msgs))
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------
// JetStream
// ---------------------------------------------------------------------------------------

// jsWithStream connects as `client` and (re)creates the file stream `name` on `subject`,
// empty. A cluster that has just started may not have elected its JetStream leaders
// yet: the stream is tried again for up to c.timeout.
func jsWithStream(c config, client, name, subject string) (*nats.Conn, nats.JetStreamContext, error) {
	nc, js, err := jsConnect(c, client)
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(c.timeout)
	for {
		err = recreateStream(c, js, name, subject)
		if err == nil {
			return nc, js, nil
		}
		if time.Now().After(deadline) {
			nc.Close()
			return nil, nil, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// recreateStream deletes the stream `name` if it exists and creates it empty.
func recreateStream(c config, js nats.JetStreamContext, name, subject string) error {
	if err := js.DeleteStream(name); err != nil && !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", name, err)
	}
	cfg := nats.StreamConfig{Name: name, Subjects: []string{subject}, Storage: nats.FileStorage, Replicas: c.replicas}
	if _, err := js.AddStream(&cfg); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

func jsConnect(c config, name string) (*nats.Conn, nats.JetStreamContext, error) {
	nc, err := connect(c, name)
	if err != nil {
		return nil, nil, err
	}
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(c.inflight), nats.MaxWait(10*time.Second))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func runJsSync(c config) (string, error) {
	nc, js, err := jsWithStream(c, "natsload-js-sync", "BENCH", "bench.>")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	payload := make([]byte, c.size)
	for i := 0; i < c.warmup; i++ {
		if _, err := js.Publish("bench.x", payload); err != nil {
			return "", fmt.Errorf("warmup publish: %w", err)
		}
	}
	lat := make([]time.Duration, 0, c.msgs)
	a := snapshot(c.serverPid)
	for i := 0; i < c.msgs; i++ {
		t0 := time.Now()
		if _, err := js.Publish("bench.x", payload); err != nil {
			return "", fmt.Errorf("publish %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	out := fmt.Sprintf("elapsed_s=%.4f acked_per_sec=%.0f ack_errors=0", el, float64(c.msgs)/el)
	return out + latencyFields("", lat) + cpuFields(c, a, b, c.msgs), nil
}

type pending struct {
	f  nats.PubAckFuture
	t0 time.Time
}

// publishAsync publishes n messages with up to c.inflight without their PubAck and
// returns the PubAck latencies (collected in publish order) and the error acks.
func publishAsync(c config, js nats.JetStreamContext, subject string, n int) ([]time.Duration, int, error) {
	payload := make([]byte, c.size)
	futures := make(chan pending, c.inflight*2)
	lat := make([]time.Duration, 0, n)
	errs := 0
	var firstErr error
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for p := range futures {
			select {
			case <-p.f.Ok():
			case err := <-p.f.Err():
				errs++
				if firstErr == nil {
					firstErr = err
				}
			case <-time.After(c.timeout):
				errs++
				if firstErr == nil {
					firstErr = errors.New("no PubAck within the timeout")
				}
			}
			lat = append(lat, time.Since(p.t0))
		}
	}()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		var opts []nats.PubOpt
		if c.stall > 0 {
			opts = append(opts, nats.StallWait(c.stall))
		}
		f, err := js.PublishAsync(subject, payload, opts...)
		if err != nil {
			close(futures)
			<-collected
			return nil, errs, fmt.Errorf("publish %d: %w", i, err)
		}
		futures <- pending{f, t0}
	}
	close(futures)
	<-collected
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "first error ack: %v\n", firstErr)
	}
	return lat, errs, nil
}

func runJsAsync(c config) (string, error) {
	nc, js, err := jsWithStream(c, "natsload-js-async", "BENCH", "bench.>")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	a := snapshot(c.serverPid)
	lat, errs, err := publishAsync(c, js, "bench.x", c.msgs)
	if err != nil {
		return "", err
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	out := fmt.Sprintf("elapsed_s=%.4f acked_per_sec=%.0f mb_per_sec=%.2f ack_errors=%d",
		el, float64(c.msgs)/el, float64(c.msgs*c.size)/el/1e6, errs)
	return out + latencyFields("ack_", lat) + cpuFields(c, a, b, c.msgs), nil
}

func runJsConsume(c config) (string, error) {
	nc, js, err := jsWithStream(c, "natsload-js-consume", "BENCH_CONSUME", "bench_consume.>")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	t := time.Now()
	if _, errs, err := publishAsync(c, js, "bench_consume.x", c.msgs); err != nil || errs > 0 {
		return "", fmt.Errorf("prefill: %d error acks, %v", errs, err)
	}
	prefill := time.Since(t).Seconds()
	maxAck := 20000
	if 2*c.batch > maxAck {
		maxAck = 2 * c.batch
	}
	sub, err := js.PullSubscribe("bench_consume.>", "bench", nats.BindStream("BENCH_CONSUME"),
		nats.AckExplicit(), nats.MaxAckPending(maxAck), nats.AckWait(30*time.Second), nats.DeliverAll())
	if err != nil {
		return "", fmt.Errorf("pull consumer: %w", err)
	}
	seen := make(map[uint64]bool, c.msgs)
	redelivered, fetches := 0, 0
	deadline := time.Now().Add(c.timeout)
	a := snapshot(c.serverPid)
	for len(seen) < c.msgs {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("timeout with %d of %d consumed", len(seen), c.msgs)
		}
		want := c.batch
		if left := c.msgs - len(seen); left < want {
			want = left
		}
		msgs, err := sub.Fetch(want, nats.MaxWait(5*time.Second))
		fetches++
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			return "", fmt.Errorf("fetch: %w", err)
		}
		for _, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return "", err
			}
			if seen[md.Sequence.Stream] {
				redelivered++
			}
			seen[md.Sequence.Stream] = true
			if err := m.Ack(); err != nil {
				return "", err
			}
		}
	}
	if err := nc.Flush(); err != nil {
		return "", err
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	pendingEnd := -1
	for i := 0; i < 50; i++ {
		info, err := sub.ConsumerInfo()
		if err == nil {
			pendingEnd = info.NumAckPending
			if pendingEnd == 0 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := fmt.Sprintf("elapsed_s=%.4f prefill_s=%.2f msgs_per_sec=%.0f mb_per_sec=%.2f pull_requests=%d redelivered=%d ack_pending_end=%d",
		el, prefill, float64(c.msgs)/el, float64(c.msgs*c.size)/el/1e6, fetches, redelivered, pendingEnd)
	return out + cpuFields(c, a, b, c.msgs), nil
}
