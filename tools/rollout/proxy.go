package main

import (
	"io"
	"net"
	"net/url"
	"sync"
	"time"
)

// slowProxy is the registry-slow fault: a TCP proxy in front of the
// registry that holds every answer back by delay, as an overloaded server
// or a congested link would.
type slowProxy struct {
	ln     net.Listener
	target string // host:port
	delay  time.Duration
	wg     sync.WaitGroup
}

func newSlowProxy(targetURL string, delay time.Duration) (*slowProxy, error) {
	u, err := url.Parse(targetURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &slowProxy{ln: ln, target: u.Host, delay: delay}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL rewrites a registry URL to go through the proxy.
func (p *slowProxy) URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *slowProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *slowProxy) handle(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() {
		// Delay each chunk of the answer: a request/response exchange
		// takes at least delay longer.
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				time.Sleep(p.delay)
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
}

func (p *slowProxy) Close() {
	p.ln.Close()
	p.wg.Wait()
}
