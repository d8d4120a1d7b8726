// Command mptcp-perf-go is Go's side of the perf harness: the connection loop
// of the Rust workers (perf/src/conn.rs), written with net's own MPTCP support
// (Dialer.SetMultipathTCP, ListenConfig.SetMultipathTCP, TCPConn.MultipathTCP).
//
//	mptcp-perf-go conn   -n 20000 -mptcp=true   # dial+accept+MultipathTCP()+close, N times
//	mptcp-perf-go conn   -n 20000 -seq          # the same in one goroutine
//	mptcp-perf-go status -k 10000                 # MultipathTCP() K times on one connection
//	mptcp-perf-go version                         # runtime.Version()
//
// Each prints one JSON line. Standard library only.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: mptcp-perf-go conn|status [flags]"))
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	n := flags.Int("n", 20000, "connections (conn)")
	k := flags.Int("k", 1000, "status calls (status)")
	mptcp := flags.Bool("mptcp", true, "SetMultipathTCP on the dialer and the listener")
	seq := flags.Bool("seq", false, "one goroutine dials and accepts (conn)")
	limit := flags.Duration("timeout", 120*time.Second, "give up after this long")
	if err := flags.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	// A hung kernel path must not hang the harness.
	time.AfterFunc(*limit, func() { fail(fmt.Errorf("timed out after %v", *limit)) })

	switch os.Args[1] {
	case "conn":
		if *seq {
			fail(connRateSequential(*n, *mptcp))
		}
		fail(connRate(*n, *mptcp))
	case "status":
		fail(statusCalls(*k, *mptcp))
	case "version":
		fmt.Println(runtime.Version())
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func listen(mptcp bool) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(mptcp)
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
}

func dialer(mptcp bool) *net.Dialer {
	d := &net.Dialer{}
	d.SetMultipathTCP(mptcp)
	return d
}

// connRate: one listener, one accepting goroutine that closes what it
// accepts, and a client that dials n connections one after the other, asks
// each whether MPTCP is on and closes it.
func connRate(n int, mptcp bool) error {
	ln, err := listen(mptcp)
	if err != nil {
		return err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	d := dialer(mptcp)

	start := time.Now()
	accepted := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			c.Close()
		}
		accepted <- nil
	}()
	active := 0
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		on, err := c.(*net.TCPConn).MultipathTCP()
		if err != nil {
			return err
		}
		if on {
			active++
		}
		c.Close()
	}
	if err := <-accepted; err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("{\"count\":%d,\"secs\":%.6f,\"active\":%d}\n", n, secs, active)
	return nil
}

// connRateSequential: the same work in one goroutine: dial, ask, close,
// then accept and close, connection after connection.
func connRateSequential(n int, mptcp bool) error {
	ln, err := listen(mptcp)
	if err != nil {
		return err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	d := dialer(mptcp)

	start := time.Now()
	active := 0
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		on, err := c.(*net.TCPConn).MultipathTCP()
		if err != nil {
			return err
		}
		if on {
			active++
		}
		c.Close()
		s, err := ln.Accept()
		if err != nil {
			return err
		}
		s.Close()
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("{\"count\":%d,\"secs\":%.6f,\"active\":%d}\n", n, secs, active)
	return nil
}

// statusCalls: MultipathTCP() k times on one connection, for a system call
// counter to divide by k.
func statusCalls(k int, mptcp bool) error {
	ln, err := listen(mptcp)
	if err != nil {
		return err
	}
	defer ln.Close()
	c, err := dialer(mptcp).Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	tcp := c.(*net.TCPConn)
	active := 0
	start := time.Now()
	for i := 0; i < k; i++ {
		on, err := tcp.MultipathTCP()
		if err != nil {
			return err
		}
		if on {
			active++
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("{\"count\":%d,\"secs\":%.6f,\"active\":%d}\n", k, secs, active)
	return nil
}

func fail(err error) {
	if err == nil {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "mptcp-perf-go:", err)
	os.Exit(1)
}
