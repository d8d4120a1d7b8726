// Test client for `mptcp run`: dials HOST:PORT with Go's net.Dialer, sends an
// HTTP/1.0 request and prints the reply. With "off" the Dialer turns MPTCP
// off itself (SetMultipathTCP(false)), so GODEBUG=multipathtcp cannot be
// what converts it; with "default" it follows GODEBUG.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 3 || (os.Args[2] != "off" && os.Args[2] != "default") {
		fmt.Fprintln(os.Stderr, "usage: dial HOST:PORT off|default")
		os.Exit(2)
	}
	var d net.Dialer
	if os.Args[2] == "off" {
		d.SetMultipathTCP(false)
	}
	c, err := d.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(reply)
}
