package nacossdk

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/nacos"
)

// Serve runs the helper's side of the pipe protocol (see nacos/helperproto.go):
// it reads the configuration and requests from in, answers and logs on
// out, and returns the exit code once in reaches EOF and the registration
// is closed. Errors that stop it before it serves go to errw.
func Serve(in io.Reader, out, errw io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		fmt.Fprintln(errw, "gracefulinit-nacos: no configuration on stdin: this helper is started by gracefulinit --nacos-mode register")
		return 2
	}
	var cfg nacos.HelperConfig
	if err := json.Unmarshal(sc.Bytes(), &cfg); err != nil {
		fmt.Fprintf(errw, "gracefulinit-nacos: bad configuration line: %v\n", err)
		return 2
	}
	w := &lineWriter{w: out}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	// The records go back to PID 1, which adds its own time and logger.
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})).With("registry", "nacos")
	r := newRegister(cfg, log)
	timeout := time.Duration(cfg.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 5 * time.Second
	}

	var wg sync.WaitGroup
	for sc.Scan() {
		var req nacos.HelperRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			log.Warn("nacos helper: bad request line ignored", "error", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.reply(req.ID, handle(r, req))
		}()
	}
	// EOF: PID 1 is done with us, or gone. Leave nothing registered.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		log.Warn("nacos helper: close at exit failed", "error", err)
	}
	wg.Wait()
	return 0
}

// handle runs one request. The register type orders the SDK calls itself,
// so requests run concurrently and a slow one never blocks the pipe.
func handle(r *register, req nacos.HelperRequest) error {
	return registry.Recover(req.Op, func() error { return handleOne(r, req) })
}

func handleOne(r *register, req nacos.HelperRequest) error {
	ctx := context.Background()
	if req.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	switch req.Op {
	case "online":
		return r.Online(ctx)
	case "offline":
		return r.Offline(ctx)
	case "close":
		return r.Close(ctx)
	}
	return fmt.Errorf("unknown op %q", req.Op)
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// lineWriter writes whole lines to PID 1, one writer at a time: slog's
// handler writes each record in one call, replies are marshalled here.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lineWriter) reply(id uint64, err error) {
	rep := nacos.HelperReply{Reply: id}
	if err != nil {
		rep.Error = err.Error()
		if rep.Error == "" {
			rep.Error = "failed"
		}
	}
	b, merr := json.Marshal(rep)
	if merr != nil {
		b = []byte(fmt.Sprintf(`{"reply":%d,"error":"reply not encodable"}`, id))
	}
	_, _ = l.Write(append(b, '\n'))
}
