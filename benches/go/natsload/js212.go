// The nats-server 2.11/2.12 write paths: per-message TTLs (async publishes with Nats-TTL
// into an allow_msg_ttl stream), counters (Nats-Incr, each publish acked) and atomic batch
// publish (batches of -batch messages, staged without replies, committed with a request).
// Streams are created through the raw $JS.API (Debian's nats.go predates these fields).

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// createStream (re)creates stream name with the given JSON config through $JS.API.
func createStream(nc *nats.Conn, name string, cfg map[string]any) error {
	_, _ = nc.Request("$JS.API.STREAM.DELETE."+name, nil, 10*time.Second)
	cfg["name"] = name
	cfg["storage"] = "file"
	body, _ := json.Marshal(cfg)
	r, err := nc.Request("$JS.API.STREAM.CREATE."+name, body, 10*time.Second)
	if err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Data, &resp) == nil && resp.Error != nil {
		return fmt.Errorf("create stream %s: %s", name, resp.Error.Description)
	}
	return nil
}

// ackError is the error of a PubAck body, if it has one.
func ackError(data []byte) error {
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return err
	}
	if ack.Error != nil {
		return errors.New(ack.Error.Description)
	}
	return nil
}

func runJsTTL(c config) (string, error) {
	nc, js, err := jsConnect(c, "natsload-js-ttl")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	if err := createStream(nc, "BENCH", map[string]any{"subjects": []string{"bench.>"}, "allow_msg_ttl": true}); err != nil {
		return "", err
	}
	payload := make([]byte, c.size)
	a := snapshot(c.serverPid)
	futures := make([]nats.PubAckFuture, 0, c.inflight)
	errs := 0
	drain := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case <-f.Err():
				errs++
			case <-time.After(c.timeout):
				errs++
			}
		}
		futures = futures[:0]
	}
	for i := 0; i < c.msgs; i++ {
		m := nats.NewMsg("bench.x")
		m.Data = payload
		m.Header.Set("Nats-TTL", "1h")
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return "", fmt.Errorf("publish %d: %w", i, err)
		}
		if futures = append(futures, f); len(futures) == cap(futures) {
			drain()
		}
	}
	drain()
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	out := fmt.Sprintf("elapsed_s=%.4f acked_per_sec=%.0f ack_errors=%d", el, float64(c.msgs)/el, errs)
	return out + cpuFields(c, a, b, c.msgs), nil
}

func runJsCounter(c config) (string, error) {
	nc, err := connect(c, "natsload-js-counter")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	if err := createStream(nc, "BENCH", map[string]any{"subjects": []string{"bench.>"}, "allow_msg_counter": true}); err != nil {
		return "", err
	}
	a := snapshot(c.serverPid)
	for i := 0; i < c.msgs; i++ {
		m := nats.NewMsg("bench.hits")
		m.Header.Set("Nats-Incr", "1")
		r, err := nc.RequestMsg(m, c.timeout)
		if err != nil {
			return "", fmt.Errorf("increment %d: %w", i, err)
		}
		if err := ackError(r.Data); err != nil {
			return "", fmt.Errorf("increment %d: %w", i, err)
		}
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	out := fmt.Sprintf("elapsed_s=%.4f acked_per_sec=%.0f", el, float64(c.msgs)/el)
	return out + cpuFields(c, a, b, c.msgs), nil
}

func runJsAtomic(c config) (string, error) {
	nc, err := connect(c, "natsload-js-atomic")
	if err != nil {
		return "", err
	}
	defer nc.Close()
	if err := createStream(nc, "BENCH", map[string]any{"subjects": []string{"bench.>"}, "allow_atomic": true}); err != nil {
		return "", err
	}
	payload := make([]byte, c.size)
	batches := c.msgs / c.batch
	if batches < 1 {
		return "", errors.New("msgs must be at least one batch")
	}
	a := snapshot(c.serverPid)
	for n := 0; n < batches; n++ {
		id := "b" + strconv.Itoa(n)
		for i := 1; i <= c.batch; i++ {
			m := nats.NewMsg("bench.x")
			m.Data = payload
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i))
			if i < c.batch {
				if err := nc.PublishMsg(m); err != nil {
					return "", err
				}
				continue
			}
			m.Header.Set("Nats-Batch-Commit", "1")
			r, err := nc.RequestMsg(m, c.timeout)
			if err != nil {
				return "", fmt.Errorf("commit %d: %w", n, err)
			}
			if err := ackError(r.Data); err != nil {
				return "", fmt.Errorf("commit %d: %w", n, err)
			}
		}
	}
	b := snapshot(c.serverPid)
	el := b.at.Sub(a.at).Seconds()
	stored := batches * c.batch
	out := fmt.Sprintf("elapsed_s=%.4f acked_per_sec=%.0f batches_per_sec=%.0f", el, float64(stored)/el, float64(batches)/el)
	return out + cpuFields(c, a, b, stored), nil
}
