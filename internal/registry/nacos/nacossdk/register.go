// Package nacossdk is the inside of gracefulinit-nacos, the helper process
// that runs nacos-sdk-go for --nacos-mode register. It is never linked
// into gracefulinit itself: the SDK can panic in goroutines of its own and
// calls log.Fatalf on bad TLS settings, and neither may end PID 1.
package nacossdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	sdklogger "github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry/nacos"
)

// register publishes the app's instance itself, for apps that do not
// register with Nacos. The SDK's ephemeral gRPC registration is tied to the
// supervisor's connection: it vanishes if the supervisor dies, and the SDK
// re-registers after reconnects.
//
// Every SDK call runs in its own goroutine so ctx bounds the caller even when
// the SDK blocks (its start-up connects synchronously, its requests time out
// on their own clock). Calls run one at a time, in order, so a registration
// abandoned by a timed-out Online cannot land after Offline's deregistration.
type register struct {
	key      nacos.HelperConfig
	weight   float64
	metadata map[string]string
	cc       constant.ClientConfig
	sc       []constant.ServerConfig
	log      *slog.Logger

	mu        sync.Mutex
	client    naming_client.INamingClient
	creating  chan struct{} // closed when the creation in flight ends
	createErr error
	gen       int  // bumped by Offline and Close: older registrations are void
	closed    bool // Close ran: a client created later is closed at once
	touched   bool // a registration was attempted (the SDK may redo it on its own)

	opMu sync.Mutex // serialises SDK calls
}

var errClosed = errors.New("registry closed")

func newRegister(cfg nacos.HelperConfig, log *slog.Logger) *register {
	dir := cfg.CacheDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "gracefulinit-nacos")
	}
	timeout := time.Duration(cfg.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	weight := cfg.Weight
	if weight <= 0 {
		weight = 1
	}
	key := cfg
	key.Password = "" // the key is for naming the instance; cc holds the password
	r := &register{
		key:      key,
		weight:   weight,
		metadata: cfg.Metadata,
		log:      log,
		cc: constant.ClientConfig{
			NamespaceId:         cfg.Namespace,
			TimeoutMs:           uint64(timeout / time.Millisecond),
			Username:            cfg.Username,
			Password:            cfg.Password,
			CacheDir:            dir,
			LogDir:              filepath.Join(dir, "log"),
			NotLoadCacheAtStart: true,
			DisableUseSnapShot:  true,
			UpdateThreadNum:     1, // we never subscribe
			LogLevel:            "warn",
		},
	}
	for _, s := range cfg.Servers {
		r.sc = append(r.sc, constant.ServerConfig{
			Scheme:      s.Scheme,
			ContextPath: s.ContextPath,
			IpAddr:      s.Host,
			Port:        s.Port,
		})
	}
	// Before any client exists: the SDK's own default logger writes
	// <binary dir>/log/nacos-sdk.log, and it only installs one while none is set.
	sdklogger.SetLogger(&sdkLog{log: log.With("component", "nacos-sdk"), secrets: []string{cfg.Password}})
	return r
}

func (r *register) Name() string { return "nacos" }

// Online registers the instance (ephemeral, enabled, healthy, the configured
// weight and metadata).
func (r *register) Online(ctx context.Context) error {
	c, err := r.clientFor(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	gen := r.gen
	r.touched = true
	r.mu.Unlock()
	err = r.run(ctx, "register", func() error {
		r.mu.Lock()
		void := gen != r.gen
		r.mu.Unlock()
		if void {
			return errors.New("registration superseded by deregistration")
		}
		ok, err := c.RegisterInstance(vo.RegisterInstanceParam{
			Ip:          r.key.IP,
			Port:        uint64(r.key.Port),
			Weight:      r.weight,
			Enable:      true,
			Healthy:     true,
			Metadata:    r.metadata,
			ClusterName: r.key.Cluster,
			ServiceName: r.key.Service,
			GroupName:   r.key.Group,
			Ephemeral:   true,
		})
		if err == nil && !ok {
			err = errors.New("server refused the registration")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("register instance %s: %w", r.key.InstanceString(), err)
	}
	r.log.Info("nacos instance registered", "instance", r.key.InstanceString(), "weight", r.weight)
	return nil
}

// Offline deregisters the instance. Never registered is nothing to do.
func (r *register) Offline(ctx context.Context) error {
	return r.deregister(ctx, false)
}

// Close deregisters (if Offline did not) and closes the SDK client.
func (r *register) Close(ctx context.Context) error {
	return r.deregister(ctx, true)
}

func (r *register) deregister(ctx context.Context, closing bool) error {
	r.mu.Lock()
	r.gen++
	touched, started := r.touched, r.creating != nil || r.client != nil
	r.touched = false
	if closing {
		r.closed = true
	}
	r.mu.Unlock()
	if !started {
		if !closing {
			r.log.Info("nacos instance was never registered: nothing to deregister", "instance", r.key.InstanceString())
		}
		return nil
	}
	c, err := r.clientFor(ctx)
	if errors.Is(err, errClosed) {
		return nil // created after Close began, and closed by its creator
	}
	if err != nil {
		return err
	}
	err = r.run(ctx, "deregister", func() error {
		if touched {
			ok, err := c.DeregisterInstance(vo.DeregisterInstanceParam{
				Ip:          r.key.IP,
				Port:        uint64(r.key.Port),
				Cluster:     r.key.Cluster,
				ServiceName: r.key.Service,
				GroupName:   r.key.Group,
				Ephemeral:   true,
			})
			if err == nil && !ok {
				err = errors.New("server refused the deregistration")
			}
			if err != nil && !closing {
				return err
			}
		}
		if closing {
			// Closing drops the connection, and with it any ephemeral
			// instance the deregistration above could not remove.
			c.CloseClient()
		}
		return nil
	})
	if err != nil {
		r.mu.Lock()
		r.touched = r.touched || touched // let Close try again
		r.mu.Unlock()
		return fmt.Errorf("deregister instance %s: %w", r.key.InstanceString(), err)
	}
	if touched {
		r.log.Info("nacos instance deregistered", "instance", r.key.InstanceString())
	}
	return nil
}

// clientFor returns the SDK client, creating it on first use in the
// background; ctx bounds only the wait, and a later call picks up a client
// whose creation outlived an earlier caller.
func (r *register) clientFor(ctx context.Context) (naming_client.INamingClient, error) {
	r.mu.Lock()
	if r.client != nil {
		c := r.client
		r.mu.Unlock()
		return c, nil
	}
	if r.creating == nil {
		ch := make(chan struct{})
		r.creating = ch
		go func() {
			c, err := r.newClient()
			r.mu.Lock()
			if err == nil && r.closed {
				c.CloseClient()
				c, err = nil, errClosed
			}
			r.client, r.createErr, r.creating = c, err, nil
			r.mu.Unlock()
			close(ch)
		}()
	}
	ch := r.creating
	r.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("nacos client not started: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return nil, fmt.Errorf("nacos client: %w", r.createErr)
	}
	return r.client, nil
}

func (r *register) newClient() (naming_client.INamingClient, error) {
	// The SDK only writes there for subscriptions, which register mode never
	// makes: a read-only root filesystem is no reason to stay unregistered.
	if err := os.MkdirAll(r.cc.CacheDir, 0o700); err != nil {
		r.log.Warn("nacos SDK cache dir not writable", "dir", r.cc.CacheDir, "error", err)
	}
	cc := r.cc
	c, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: r.sc})
	if err != nil {
		return nil, errors.New(redact.Text(err.Error(), r.cc.Password))
	}
	return c, nil
}

// run calls fn in order with other SDK calls and waits for it at most until
// ctx ends; fn then finishes in the background.
func (r *register) run(ctx context.Context, what string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		r.opMu.Lock()
		defer r.opMu.Unlock()
		done <- fn()
	}()
	select {
	case err := <-done:
		if err != nil {
			return errors.New(redact.Text(err.Error(), r.cc.Password))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w (left running in the background)", what, ctx.Err())
	}
}

// sdkLog routes the SDK's logging into ours. The SDK reports recoverable
// conditions (reconnects while a server restarts) as errors and narrates
// every request at info; our own code logs each operation's outcome, so the
// SDK's lines move one level down. Its HTTP agent logs request parameters,
// which can hold the password or a token: every line is scrubbed.
type sdkLog struct {
	log     *slog.Logger
	secrets []string
}

func (l *sdkLog) emit(level slog.Level, msg string) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, redact.Text(strings.TrimSpace(msg), l.secrets...))
}

func (l *sdkLog) Info(args ...interface{})  { l.emit(slog.LevelDebug, fmt.Sprint(args...)) }
func (l *sdkLog) Warn(args ...interface{})  { l.emit(slog.LevelInfo, fmt.Sprint(args...)) }
func (l *sdkLog) Error(args ...interface{}) { l.emit(slog.LevelWarn, fmt.Sprint(args...)) }
func (l *sdkLog) Debug(args ...interface{}) { l.emit(slog.LevelDebug, fmt.Sprint(args...)) }

func (l *sdkLog) Infof(f string, args ...interface{}) {
	l.emit(slog.LevelDebug, fmt.Sprintf(f, args...))
}
func (l *sdkLog) Warnf(f string, args ...interface{}) {
	l.emit(slog.LevelInfo, fmt.Sprintf(f, args...))
}
func (l *sdkLog) Errorf(f string, args ...interface{}) {
	l.emit(slog.LevelWarn, fmt.Sprintf(f, args...))
}
func (l *sdkLog) Debugf(f string, args ...interface{}) {
	l.emit(slog.LevelDebug, fmt.Sprintf(f, args...))
}

// Close is called by the SDK when another logger replaces this one; our
// logger is not the SDK's to close.
func (l *sdkLog) Close() error { return nil }
