// Package eureka takes the app's instance in and out of Eureka.
//
// Mark mode (default): the app (Spring Cloud Netflix) registers itself and
// keeps heartbeating; gracefulinit only changes that instance's status.
// Offline puts an OUT_OF_SERVICE override on it, which Eureka keeps through
// the app's heartbeats and even its re-registration, so the JVM can keep
// serving in-flight requests while consumers drop it. Online, once the app is
// ready, removes an override that an earlier drain left behind (a JVM
// restarted in place with the same instance id would otherwise stay out of
// rotation forever). It never deregisters a live JVM: its next heartbeat would
// get 404 and register it again as UP.
//
// Register mode: gracefulinit registers the instance itself, heartbeats it,
// and deregisters it at Offline.
//
// The REST calls are made with net/http and a context each (see client);
// hudl/fargo supplies the instance model and its JSON encoding, and its
// logging is routed into slog without credentials (see fargolog.go).
package eureka

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hudl/fargo"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

const (
	statusUp           = "UP"
	statusOutOfService = "OUT_OF_SERVICE"

	// DefaultHeartbeat is Options.Heartbeat's default, and the flag's.
	DefaultHeartbeat = 30 * time.Second
	// DefaultMode is Options.Mode's default, and the flag's.
	DefaultMode = "mark"
	// DrainCacheMax is the longest a consumer keeps calling an instance
	// Eureka took out: the server's read cache, the client's fetch and
	// Ribbon's cache, 30 s each, plus 5 s for the change to reach it (a
	// cache refreshed just before lasts its whole TTL). The drain's
	// --drain-cache-max default with Eureka.
	DrainCacheMax = 95 * time.Second
	// Eureka's default lease (eureka.instance.lease-expiration-duration-in-seconds).
	defaultLease = 90 * time.Second
)

// errStopping is returned by Online once Offline or Close has begun: putting
// the instance back in rotation then would undo the drain.
var errStopping = errors.New("eureka: offline has begun, not putting the instance online")

// Eureka is the Eureka registry backend. Its methods are safe for concurrent
// use; writes to the registry are serialised so that nothing Online or a
// heartbeat sends can reach the server after Offline's request.
type Eureka struct {
	app, id, vip, ip  string
	configuredID      string // the id as configured (or Spring's default); id may become one found by address
	port              int
	register          bool
	heartbeat         time.Duration
	lease             time.Duration
	deregisterOnExit  bool
	metadata          map[string]string
	timeout           time.Duration
	log               *slog.Logger
	c                 *client
	ops               chan struct{} // a token: held for each sequence of writes
	stopCtx           context.Context
	halt              context.CancelFunc // cancels stopCtx: Online and heartbeats in flight
	mu                sync.Mutex         // guards the fields below
	stopping          bool
	hbDone            chan struct{} // closed when the heartbeat loop has returned; nil if never started
	registered        bool          // register mode: an instance of ours may exist
	holding           bool          // mark mode: the app's early registration is held (ours, or registered out as told)
	told              bool          // mark mode: AppEnv told the app to register itself OUT_OF_SERVICE
	onlineDone        bool          // Online has put the instance in rotation once: Keep may look
	ownStatus         bool          // the user sets the app's initial status: it may register out of rotation on its own
	seen              bool          // Hold has read the app's registration once
	deregisteredClose bool          // Close already removed the instance
}

var _ registry.Registry = (*Eureka)(nil)

// New validates o and returns the backend. It makes no network call.
// It never hands an empty service URL list to fargo (which would log.Fatal,
// killing PID 1): an empty list is an error here.
func New(o Options, log *slog.Logger) (registry.Registry, error) {
	return newEureka(o, log)
}

func newEureka(o Options, log *slog.Logger) (*Eureka, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o, err := o.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("eureka: %w", err)
	}
	bases, user, pass := o.URLs, o.Username, o.Password
	e := &Eureka{
		app:              o.App,
		id:               o.InstanceID,
		configuredID:     o.InstanceID,
		vip:              o.Service,
		ip:               o.IP,
		port:             o.Port,
		register:         o.Mode == "register",
		heartbeat:        o.Heartbeat,
		deregisterOnExit: o.DeregisterOnExit,
		metadata:         o.Metadata,
		timeout:          o.Timeout,
		log:              log.With("registry", "eureka", "app", o.App, "instance", o.InstanceID),
		ops:              make(chan struct{}, 1),
	}
	e.lease = max(defaultLease, 3*e.heartbeat)
	e.c = &client{bases: bases, hc: failover.NewHTTPClient(user, pass), timeout: e.timeout, secrets: []string{pass, redact.BasicAuth(user, pass)}}
	e.stopCtx, e.halt = context.WithCancel(context.Background())
	fargoLog.Store(log.With("registry", "eureka"))
	return e, nil
}

// Name implements registry.Registry.
func (e *Eureka) Name() string { return "eureka" }

// SelfRegistered: in mark mode the app registers itself, before it is ready.
func (e *Eureka) SelfRegistered() bool { return !e.register }

var (
	_ registry.Holder   = (*Eureka)(nil)
	_ registry.AppEnver = (*Eureka)(nil)
	_ registry.Keeper   = (*Eureka)(nil)
)

// The variables that set Spring Cloud Netflix's eureka.instance.initial-status
// (the status EurekaServiceRegistry.register gives the instance it
// registers): Spring Boot's relaxed binding reads the first; the second is
// the older spelling some setups use, and Spring Boot binds it too.
const (
	envInitialStatus       = "EUREKA_INSTANCE_INITIALSTATUS"
	envInitialStatusLegacy = "EUREKA_INSTANCE_INITIAL_STATUS"
)

// AppEnv is registry.AppEnver (mark mode): the app is told to register
// itself OUT_OF_SERVICE, so that no consumer sees it in rotation before it
// is ready; Hold recognises that registration and Online puts it UP. A
// variable the user set is left alone: the app's initial status is theirs
// (OUT_OF_SERVICE there is what gracefulinit would tell: the app is told).
func (e *Eureka) AppEnv(lookup func(string) (string, bool)) []string {
	if e.register {
		return nil
	}
	for _, name := range []string{envInitialStatus, envInitialStatusLegacy} {
		if v, ok := lookup(name); ok && strings.EqualFold(strings.TrimSpace(v), statusOutOfService) {
			// What gracefulinit would tell it: a told app, put UP once
			// ready and kept there (Keep); still the user's status, read
			// before any write (holdUnseen).
			e.mu.Lock()
			e.told, e.ownStatus = true, true
			e.mu.Unlock()
			e.log.Info("eureka: the environment already tells the app to register itself OUT_OF_SERVICE; put UP once it is ready", "variable", name)
			return nil
		} else if ok {
			e.mu.Lock()
			e.ownStatus = !strings.EqualFold(strings.TrimSpace(v), statusUp)
			e.mu.Unlock()
			// The value is not echoed: it may carry anything.
			e.log.Info("eureka: the app's initial status is set by its environment; not telling it to register out of rotation", "variable", name, "up", !e.ownStatus)
			return nil
		}
	}
	e.mu.Lock()
	e.told = true
	e.mu.Unlock()
	return []string{envInitialStatus + "=" + statusOutOfService}
}

// acquire takes the write token, or gives up when ctx ends.
func (e *Eureka) acquire(ctx context.Context) (release func(), err error) {
	select {
	case e.ops <- struct{}{}:
		return func() { <-e.ops }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("eureka: waiting for an earlier call: %w", context.Cause(ctx))
	}
}

func (e *Eureka) isStopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopping
}

// stop marks the backend as stopping and cuts short any Online call or
// heartbeat in flight, so the caller's write comes after theirs.
func (e *Eureka) stop() {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	e.halt()
}

// Online implements registry.Registry. Mark mode: an instance not (yet)
// registered by the app is an error, so the caller retries; an
// OUT_OF_SERVICE status or override is removed. Register mode: registers the
// instance as UP, starts the heartbeat, and removes an override the server
// re-applied from an earlier drain.
func (e *Eureka) Online(ctx context.Context) error {
	if e.isStopping() {
		return errStopping
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.stopCtx, cancel)()
	release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	if e.isStopping() {
		return errStopping
	}
	if e.register {
		if err := e.registerInstance(ctx); err != nil {
			return err
		}
		e.startHeartbeat()
	}
	if err := e.repair(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.onlineDone = true
	e.mu.Unlock()
	return nil
}

// repair reads the instance and removes an OUT_OF_SERVICE status with
// DELETE .../status?value=UP: Eureka keeps an override until it is deleted
// (or the instance is deregistered), and fargo has no call for the DELETE.
// An instance out by its own status is first PUT UP (see below).
func (e *Eureka) repair(ctx context.Context) error {
	id := e.instanceID()
	path := instancePath(e.app, id)
	a, err := e.c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return fmt.Errorf("eureka: reading instance: %w", err)
	}
	if a.notFound() && e.register {
		// Just registered: a server that serves reads from a cache
		// (Polaris) may not show it yet, and a freshly registered
		// instance carries no override worth waiting for.
		e.log.Debug("registered instance not readable yet; skipping the override check")
		return nil
	}
	if a.notFound() {
		found, holds, err := e.findByAddr(ctx)
		if err != nil {
			return err
		}
		if found == "" {
			return fmt.Errorf("eureka: instance %s of %s is not registered yet (HTTP %d from %s; the server holds %s): waiting for the app to register",
				id, e.app, a.code, redact.URL(a.base), holds)
		}
		id, path = found, instancePath(e.app, found)
		if a, err = e.c.do(ctx, http.MethodGet, path, nil, nil); err != nil {
			return fmt.Errorf("eureka: reading instance: %w", err)
		}
		if a.notFound() {
			return fmt.Errorf("eureka: instance %s of %s (found by address) vanished before it could be read (HTTP %d)", id, e.app, a.code)
		}
	}
	if !a.ok() {
		return &statusError{method: http.MethodGet, url: redact.URL(a.base + path), code: a.code}
	}
	ins, err := parseInstance(a.body)
	if err != nil {
		return fmt.Errorf("eureka: reading instance from %s: %w", redact.URL(a.base), err)
	}
	if ins.Status != statusOutOfService && ins.OverriddenStatus != statusOutOfService {
		e.log.Debug("instance in rotation: nothing to repair", "status", ins.Status, "overriddenstatus", ins.OverriddenStatus)
		return nil
	}
	e.mu.Lock()
	holding := e.holding
	e.mu.Unlock()
	if holding {
		e.log.Info("eureka hold released: putting the instance in rotation now that the app is ready",
			"status", ins.Status, "overriddenstatus", ins.OverriddenStatus)
	} else {
		e.log.Info("instance is OUT_OF_SERVICE, probably left by an earlier drain: putting it back in rotation",
			"status", ins.Status, "overriddenstatus", ins.OverriddenStatus)
	}
	return e.putUp(ctx, id, ins)
}

// putUp puts instance id, read as ins and OUT_OF_SERVICE, in rotation: the
// write of Online's repair and of Keep. The caller holds the write token.
// Once sent, a write is not cut short by the stop (halt), only by the
// call's bound: a request the client abandons may still be applied by the
// server after the offline step's OUT_OF_SERVICE. Offline waits for the
// token, so it comes after the answer; no write of putUp follows it.
func (e *Eureka) putUp(ctx context.Context, id string, ins instanceInfo) error {
	path := instancePath(e.app, id)
	var a answer
	var err error
	wctx, cancel := registry.Uncut(ctx, e.timeout)
	defer cancel()
	stopped := func() bool { return e.isStopping() || ctx.Err() != nil }
	if stopped() {
		return errStopping
	}
	if ins.OverriddenStatus != statusOutOfService {
		// Out by its own status (the app registered OUT_OF_SERVICE as
		// AppEnv told it; Polaris shows every hold this way). Netflix
		// Eureka's DELETE .../status changes the status only when it
		// removes an override (deleteStatusOverride): with none it
		// answers 200 and the instance stays out. PUT status=UP sets it
		// UP there, as an override; the DELETE below then removes that
		// override (status stays UP: LeaseExistsRule keeps it through
		// renewals and re-registrations), so that a JVM restarted in
		// place registers as told again rather than UP by our override.
		// Polaris sets UP on either request.
		if a, err = e.c.do(wctx, http.MethodPut, path+"/status", url.Values{"value": {statusUp}}, nil); err != nil {
			return fmt.Errorf("eureka: putting the instance UP: %w", err)
		}
		if a.notFound() {
			return fmt.Errorf("eureka: instance %s of %s disappeared while putting it UP (HTTP %d)", id, e.app, a.code)
		}
		if !a.ok() {
			return &statusError{method: http.MethodPut, url: redact.URL(a.base + path + "/status"), code: a.code}
		}
	}
	if stopped() {
		return errStopping
	}
	a, err = e.c.do(wctx, http.MethodDelete, path+"/status", url.Values{"value": {statusUp}}, nil)
	if err != nil {
		return fmt.Errorf("eureka: clearing the OUT_OF_SERVICE override: %w", err)
	}
	if a.notFound() {
		return fmt.Errorf("eureka: instance %s of %s disappeared while clearing its override (HTTP %d)", id, e.app, a.code)
	}
	if !a.ok() {
		return &statusError{method: http.MethodDelete, url: redact.URL(a.base + path + "/status"), code: a.code}
	}
	e.mu.Lock()
	e.holding = false
	e.mu.Unlock()
	e.log.Info("OUT_OF_SERVICE override cleared: instance is UP", "id", id, "server", redact.URL(a.base))
	return nil
}

// Hold is registry.Holder (mark mode): one look at the app's own
// registration while the app starts. An instance in rotation gets the
// OUT_OF_SERVICE override, as Offline does; Online (repair) puts it UP once
// the app is ready. The override survives renewals and re-registration on
// Eureka; Polaris drops it when the app registers again as UP, and the
// next look puts it back. An app told by AppEnv registers itself
// OUT_OF_SERVICE: that registration is held as it is (HoldRegisteredOut).
func (e *Eureka) Hold(ctx context.Context) (registry.HoldState, error) {
	if e.register || e.isStopping() {
		return registry.HoldAbsent, nil
	}
	// Offline cuts a look in flight short: it must not wait for the
	// write token behind a registry that hangs.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.stopCtx, cancel)()
	release, err := e.acquire(ctx)
	if err != nil {
		return registry.HoldAbsent, err
	}
	defer release()
	if e.isStopping() {
		return registry.HoldAbsent, nil
	}
	id := e.instanceID()
	a, err := e.c.do(ctx, http.MethodGet, instancePath(e.app, id), nil, nil)
	if err != nil {
		return registry.HoldAbsent, fmt.Errorf("eureka: reading instance: %w", err)
	}
	if a.notFound() {
		if st, done, err := e.holdUnseen(ctx, id); done || err != nil {
			return st, err
		}
		found, _, err := e.findByAddr(ctx)
		if err != nil || found == "" {
			return registry.HoldAbsent, err
		}
		id = found
		if a, err = e.c.do(ctx, http.MethodGet, instancePath(e.app, id), nil, nil); err != nil {
			return registry.HoldAbsent, fmt.Errorf("eureka: reading instance: %w", err)
		}
		if a.notFound() {
			return registry.HoldAbsent, nil
		}
	}
	if !a.ok() {
		return registry.HoldAbsent, &statusError{method: http.MethodGet, url: redact.URL(a.base + instancePath(e.app, id)), code: a.code}
	}
	ins, err := parseInstance(a.body)
	if err != nil {
		return registry.HoldAbsent, fmt.Errorf("eureka: reading instance from %s: %w", redact.URL(a.base), err)
	}
	e.mu.Lock()
	e.seen = true
	// Told, and out of rotation by its own status with no override of
	// ours: the app registered itself as AppEnv told it.
	toldOut := e.told && !e.holding && ins.Status == statusOutOfService && ins.OverriddenStatus != statusOutOfService
	if toldOut {
		e.holding = true
	}
	e.mu.Unlock()
	if toldOut {
		e.log.Debug("eureka instance registered OUT_OF_SERVICE, as its environment told it: held until the app is ready", "id", id, "server", redact.URL(a.base))
		return registry.HoldRegisteredOut, nil
	}
	if ins.Status == statusOutOfService || ins.OverriddenStatus == statusOutOfService {
		return registry.HoldKept, nil
	}
	if a, err = e.markOut(ctx, id); err != nil {
		return registry.HoldAbsent, err
	}
	if a.notFound() {
		return registry.HoldAbsent, nil
	}
	e.mu.Lock()
	e.holding = true
	e.mu.Unlock()
	e.log.Debug("eureka instance held OUT_OF_SERVICE until the app is ready", "id", id, "status_was", ins.Status, "server", redact.URL(a.base))
	return registry.HoldApplied, nil
}

// holdUnseen is the hold's write first: the server's reads do not show the
// configured instance (yet), but a server that serves them from a cache
// (Polaris: rebuilt every second; consumers read the same cache) may have
// stored the registration already. PUT .../status=OUT_OF_SERVICE reaches
// the store (Polaris's status update reads it, not the cache), so the hold
// lands right after the registration rather than one look after the cache
// showed it to consumers too. 404 (Polaris: 400) means not registered yet:
// done is false and the caller looks further (findByAddr).
//
// It is tried only until the hold's first write or the first read of the
// registration (later looks read first: they must see Polaris drop the
// hold when the app registers again, and the Set bounds the re-applies by
// what they report), only on the configured id (an instance found by
// address is read first, as before), and not when the user sets the app's
// initial status other than UP (an app that may register out of rotation
// on its own is read, not overwritten). What it writes on an instance whose
// status it has not read is the hold itself: on one the app registered
// OUT_OF_SERVICE (told to) it changes nothing Polaris shows, and Online
// clears it as any hold. On Netflix Eureka an instance's GET reads the
// registry itself, so this PUT only finds a registration that landed
// between the two requests.
func (e *Eureka) holdUnseen(ctx context.Context, id string) (st registry.HoldState, done bool, err error) {
	e.mu.Lock()
	try := !e.seen && !e.holding && !e.ownStatus && id == e.configuredID
	e.mu.Unlock()
	if !try {
		return registry.HoldAbsent, false, nil
	}
	a, err := e.markOut(ctx, id)
	if err != nil {
		return registry.HoldAbsent, false, err
	}
	if a.notFound() {
		return registry.HoldAbsent, false, nil
	}
	e.mu.Lock()
	e.holding = true
	e.mu.Unlock()
	e.log.Debug("eureka instance held OUT_OF_SERVICE before the server's reads showed it", "id", id, "server", redact.URL(a.base))
	return registry.HoldApplied, true, nil
}

// Keep is registry.Keeper (mark mode, the app told by AppEnv, after Online
// put the instance UP): one look at the instance. The app's own status in
// the JVM stays OUT_OF_SERVICE, as told, so whenever it registers afresh
// (its lease lost to a server restart or eviction: the renewal's 404 makes
// the Eureka client register again) it registers out of rotation, and
// nothing of its own puts it back. An instance that is OUT_OF_SERVICE with
// no override is that registration: it is put UP by Online's write (putUp).
// An OUT_OF_SERVICE override is someone's decision (an operator's, or a
// drain's) and is left alone. Polaris keeps no override (it shows
// overriddenStatus UNKNOWN whatever set the status), so there an operator's
// PUT .../status=OUT_OF_SERVICE looks like the told registration and is put
// back too. An instance the server does not hold (404) is left to the
// app's client, which registers it again. Keep takes the write token and
// is cut short by Offline and Close, so it never writes once they began.
func (e *Eureka) Keep(ctx context.Context) (put bool, err error) {
	e.mu.Lock()
	look := !e.register && e.told && e.onlineDone && !e.stopping
	e.mu.Unlock()
	if !look {
		return false, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.stopCtx, cancel)()
	release, err := e.acquire(ctx)
	if err != nil {
		return false, e.keepErr(err)
	}
	defer release()
	if e.isStopping() {
		return false, nil
	}
	id := e.instanceID()
	path := instancePath(e.app, id)
	a, err := e.c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return false, e.keepErr(fmt.Errorf("eureka: reading instance: %w", err))
	}
	if a.notFound() {
		e.log.Debug("eureka keep: instance not registered now; the app's client registers it again", "id", id, "http_status", a.code)
		return false, nil
	}
	if !a.ok() {
		return false, &statusError{method: http.MethodGet, url: redact.URL(a.base + path), code: a.code}
	}
	ins, err := parseInstance(a.body)
	if err != nil {
		return false, fmt.Errorf("eureka: reading instance from %s: %w", redact.URL(a.base), err)
	}
	if ins.Status != statusOutOfService {
		return false, nil
	}
	if ov := ins.OverriddenStatus; ov != "" && ov != "UNKNOWN" {
		e.log.Debug("eureka keep: instance OUT_OF_SERVICE by an override, not by the app's registration: left alone", "id", id, "overriddenstatus", ov)
		return false, nil
	}
	e.log.Info("eureka instance registered again OUT_OF_SERVICE, as the app was told at start: putting it back in rotation",
		"id", id, "status", ins.Status, "overriddenstatus", ins.OverriddenStatus)
	if err := e.putUp(ctx, id, ins); err != nil {
		return false, e.keepErr(err)
	}
	return true, nil
}

// keepErr is err, or nil when Offline or Close cut the look short: that is
// the stop, not a registry failing.
func (e *Eureka) keepErr(err error) error {
	if e.isStopping() {
		return nil
	}
	return err
}

// Offline implements registry.Registry. Mark mode: PUT
// .../status?value=OUT_OF_SERVICE on the configured instance id, or, when the
// server does not know it (404, or Polaris's 400), on the app's instance at
// our ip:port; when there is none, an error wrapping registry.ErrNotFound.
// Register mode: stops the heartbeat and deregisters.
func (e *Eureka) Offline(ctx context.Context) error {
	e.stop()
	release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	if e.register {
		return e.deregister(ctx, "offline")
	}
	id := e.instanceID()
	a, err := e.markOut(ctx, id)
	if err != nil {
		return err
	}
	if a.notFound() {
		found, holds, err := e.findByAddr(ctx)
		if err != nil {
			return fmt.Errorf("eureka: instance %s not found (HTTP %d), and looking it up by address failed: %w", id, a.code, err)
		}
		if found == "" {
			e.log.Warn("eureka instance not found: nothing was taken out of rotation",
				"searched", fmt.Sprintf("id %s, or %s:%d in app %s", id, e.ip, e.port, e.app), "server_holds", holds)
			return fmt.Errorf("no instance %s or at %s:%d in %s (the server holds %s): %w", id, e.ip, e.port, e.app, holds, registry.ErrNotFound)
		}
		id = found
		if a, err = e.markOut(ctx, id); err != nil {
			return err
		}
		if a.notFound() {
			// Found a moment ago, gone now: deregistered, which takes
			// it out of rotation as well.
			e.log.Info("instance deregistered meanwhile: nothing to take out of rotation", "id", id)
			return nil
		}
	}
	e.log.Info("instance marked OUT_OF_SERVICE", "id", id, "server", redact.URL(a.base))
	return nil
}

// markOut puts the OUT_OF_SERVICE override on instance id; a not-found
// answer is the caller's to interpret.
func (e *Eureka) markOut(ctx context.Context, id string) (answer, error) {
	path := instancePath(e.app, id) + "/status"
	a, err := e.c.do(ctx, http.MethodPut, path, url.Values{"value": {statusOutOfService}}, nil)
	if err != nil {
		return a, fmt.Errorf("eureka: marking OUT_OF_SERVICE: %w", err)
	}
	if !a.ok() && !a.notFound() {
		return a, &statusError{method: http.MethodPut, url: redact.URL(a.base + path), code: a.code}
	}
	return a, nil
}

// instanceID is the id the app's instance goes by: the configured (or
// derived) one until findByAddr found the real one.
func (e *Eureka) instanceID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.id
}

// findByAddr looks the app up (GET /apps/APP) for the instance at our
// ip:port: Spring users often set eureka.instance.instance-id to ${ip}:${port}
// or another form gracefulinit cannot derive. It returns the found id ("" if
// none, remembering it otherwise) and, for logs, what the server holds.
func (e *Eureka) findByAddr(ctx context.Context) (id, holds string, err error) {
	path := "/apps/" + url.PathEscape(e.app)
	a, err := e.c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return "", "", fmt.Errorf("eureka: reading app %s: %w", e.app, err)
	}
	if a.notFound() {
		return "", "no instances (no app " + e.app + ")", nil
	}
	if !a.ok() {
		return "", "", &statusError{method: http.MethodGet, url: redact.URL(a.base + path), code: a.code}
	}
	ins, err := parseApp(a.body)
	if err != nil {
		return "", "", fmt.Errorf("eureka: reading app %s from %s: %w", e.app, redact.URL(a.base), err)
	}
	parts := make([]string, 0, len(ins))
	for _, in := range ins {
		parts = append(parts, fmt.Sprintf("%s (%s:%d %s)", in.InstanceID, in.IPAddr, in.Port, in.Status))
		if in.IPAddr == e.ip && int(in.Port) == e.port && e.port > 0 && id == "" {
			id = in.InstanceID
		}
	}
	holds = strings.Join(parts, ", ")
	if len(parts) == 0 {
		holds = "no instances"
	}
	if id != "" {
		e.mu.Lock()
		was := e.id
		e.id = id
		e.mu.Unlock()
		e.log.Info("instance id not known to eureka; found the app's instance by address", "configured_id", was, "id", id, "ip", e.ip, "port", e.port)
	}
	return id, holds, nil
}

// Close implements registry.Registry, after the app has exited. Register
// mode: stops the heartbeat and deregisters unless Offline already did.
// Mark mode: deregisters only with DeregisterOnExit (the JVM is gone, so no
// heartbeat can bring the instance back).
func (e *Eureka) Close(ctx context.Context) error {
	e.stop()
	defer e.c.hc.CloseIdleConnections()
	release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := e.waitHeartbeat(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	need := (e.register && e.registered) || (!e.register && e.deregisterOnExit && !e.deregisteredClose)
	e.mu.Unlock()
	if !need {
		return nil
	}
	if err := e.deregister(ctx, "close"); err != nil {
		return err
	}
	e.mu.Lock()
	e.deregisteredClose = true
	e.mu.Unlock()
	return nil
}

// deregister sends DELETE .../apps/APP/ID; an unknown instance counts as done.
// The caller holds the write token.
func (e *Eureka) deregister(ctx context.Context, step string) error {
	path := instancePath(e.app, e.instanceID())
	a, err := e.c.do(ctx, http.MethodDelete, path, nil, nil)
	if err != nil {
		return fmt.Errorf("eureka: deregistering: %w", err)
	}
	if !a.ok() && !a.notFound() {
		return &statusError{method: http.MethodDelete, url: redact.URL(a.base + path), code: a.code}
	}
	e.mu.Lock()
	e.registered = false
	e.mu.Unlock()
	if a.notFound() {
		e.log.Info("instance not registered: nothing to deregister", "step", step, "http_status", a.code)
		return nil
	}
	e.log.Info("instance deregistered", "step", step, "server", redact.URL(a.base))
	return nil
}

// instanceBody is the registration document, built with fargo's model so it
// has the shape Eureka clients send (port objects, dataCenterInfo @class).
func (e *Eureka) instanceBody() ([]byte, error) {
	hostPort := net.JoinHostPort(e.ip, strconv.Itoa(e.port))
	ins := &fargo.Instance{
		InstanceId: e.id,
		// The IP, as with Spring's eureka.instance.prefer-ip-address=true:
		// consumers connect to hostName, and a pod's hostname does not
		// resolve from other pods.
		HostName:          e.ip,
		App:               e.app,
		IPAddr:            e.ip,
		VipAddress:        e.vip,
		SecureVipAddress:  e.vip,
		Status:            fargo.UP,
		Overriddenstatus:  fargo.UNKNOWN,
		Port:              e.port,
		PortEnabled:       true,
		SecurePort:        443,
		SecurePortEnabled: false,
		HomePageUrl:       "http://" + hostPort + "/",
		CountryId:         1,
		DataCenterInfo:    fargo.DataCenterInfo{Name: fargo.MyOwn},
		LeaseInfo: fargo.LeaseInfo{
			RenewalIntervalInSecs: int32(max(1, e.heartbeat.Round(time.Second)/time.Second)),
			DurationInSecs:        int32(e.lease / time.Second),
		},
	}
	for k, v := range e.metadata {
		ins.SetMetadataString(k, v)
	}
	return json.Marshal(&fargo.RegisterInstanceJson{Instance: ins})
}

// registerInstance POSTs the instance. The caller holds the write token.
func (e *Eureka) registerInstance(ctx context.Context) error {
	body, err := e.instanceBody()
	if err != nil {
		return fmt.Errorf("eureka: encoding the instance: %w", err)
	}
	if e.isStopping() || ctx.Err() != nil {
		return errStopping
	}
	// Set before sending: a request cut short may still have landed, and
	// Close must then remove it.
	e.mu.Lock()
	e.registered = true
	e.mu.Unlock()
	// Once sent, not cut short by the stop (see putUp): the offline
	// step's deregistration comes after its answer.
	wctx, cancel := registry.Uncut(ctx, e.timeout)
	defer cancel()
	path := "/apps/" + url.PathEscape(e.app)
	a, err := e.c.do(wctx, http.MethodPost, path, nil, body)
	if err != nil {
		return fmt.Errorf("eureka: registering: %w", err)
	}
	if !a.ok() {
		return &statusError{method: http.MethodPost, url: redact.URL(a.base + path), code: a.code}
	}
	e.log.Info("instance registered", "ip", e.ip, "port", e.port, "vip", e.vip, "server", redact.URL(a.base))
	return nil
}

// startHeartbeat starts the renewal loop once; it ends when stopCtx does.
func (e *Eureka) startHeartbeat() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hbDone != nil || e.stopping {
		return
	}
	done := make(chan struct{})
	e.hbDone = done
	go func() {
		defer close(done)
		t := time.NewTicker(e.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-e.stopCtx.Done():
				return
			case <-t.C:
				e.safeBeat()
			}
		}
	}()
}

// safeBeat renews once. The loop runs in PID 1: a panic in a beat is
// logged and the next beat goes on.
func (e *Eureka) safeBeat() {
	if err := registry.Recover("eureka heartbeat", func() error { e.beat(); return nil }); err != nil {
		e.log.Error("eureka heartbeat panicked; the next one goes on", "error", err)
	}
}

// waitHeartbeat waits for the heartbeat loop to return after stop.
func (e *Eureka) waitHeartbeat(ctx context.Context) error {
	e.mu.Lock()
	done := e.hbDone
	e.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("eureka: waiting for the heartbeat to stop: %w", context.Cause(ctx))
	}
}

// beat renews the lease once, re-registering if the server lost the
// instance (404: evicted after missed heartbeats, or a restarted server).
func (e *Eureka) beat() {
	ctx, cancel := context.WithTimeout(e.stopCtx, min(e.timeout, e.heartbeat))
	defer cancel()
	release, err := e.acquire(ctx)
	if err != nil {
		return
	}
	defer release()
	if e.isStopping() {
		return
	}
	path := instancePath(e.app, e.id)
	a, err := e.c.do(ctx, http.MethodPut, path, nil, nil)
	switch {
	case err != nil:
		if e.stopCtx.Err() == nil {
			e.log.Warn("eureka heartbeat failed", "error", err)
		}
	case a.notFound():
		e.log.Warn("eureka no longer knows the instance: registering it again", "http_status", a.code)
		if err := e.registerInstance(ctx); err != nil && e.stopCtx.Err() == nil {
			e.log.Warn("eureka re-registration failed", "error", err)
		}
	case !a.ok():
		e.log.Warn("eureka heartbeat refused", "error", &statusError{method: http.MethodPut, url: redact.URL(a.base + path), code: a.code})
	default:
		e.log.Debug("eureka heartbeat", "server", redact.URL(a.base))
	}
}

// instanceInfo is the part of an instance document gracefulinit reads.
// encoding/json matches keys case-insensitively, so "overriddenstatus"
// (Eureka before 1.9, and its XML) and "overriddenStatus" (later Eureka,
// Polaris) both land in OverriddenStatus.
type instanceInfo struct {
	InstanceID       string `json:"instanceId"`
	Status           string `json:"status"`
	OverriddenStatus string `json:"overriddenstatus"`
}

type instanceXML struct {
	InstanceID  string `xml:"instanceId"`
	Status      string `xml:"status"`
	Overridden1 string `xml:"overriddenstatus"`
	Overridden2 string `xml:"overriddenStatus"`
}

// parseInstance reads GET /apps/APP/ID: JSON {"instance":{...}} as asked
// for with Accept: application/json, or XML from a server that ignores it.
func parseInstance(b []byte) (instanceInfo, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '<' {
		var x instanceXML
		if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&x); err != nil && !errors.Is(err, io.EOF) {
			return instanceInfo{}, fmt.Errorf("decoding XML instance: %w", err)
		}
		ov := x.Overridden1
		if ov == "" {
			ov = x.Overridden2
		}
		return instanceInfo{InstanceID: x.InstanceID, Status: x.Status, OverriddenStatus: ov}, nil
	}
	var env struct {
		Instance *instanceInfo `json:"instance"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return instanceInfo{}, fmt.Errorf("decoding JSON instance: %w", err)
	}
	if env.Instance == nil {
		return instanceInfo{}, errors.New("response has no instance")
	}
	return *env.Instance, nil
}

// appInstance is one instance of GET /apps/APP, as far as findByAddr needs it.
type appInstance struct {
	InstanceID string    `json:"instanceId" xml:"instanceId"`
	IPAddr     string    `json:"ipAddr" xml:"ipAddr"`
	Port       portValue `json:"port" xml:"port"`
	Status     string    `json:"status" xml:"status"`
}

// portValue reads Eureka's port in its shapes: {"$": 8080, "@enabled":
// "true"} (the number sometimes a string), a bare number, or XML text.
type portValue int

func (p *portValue) UnmarshalJSON(b []byte) error {
	var obj struct {
		Value json.RawMessage `json:"$"`
	}
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		b = obj.Value
	}
	n, err := strconv.Atoi(strings.Trim(string(b), `"`))
	if err != nil {
		return fmt.Errorf("port %s: %w", b, err)
	}
	*p = portValue(n)
	return nil
}

func (p *portValue) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var s string
	if err := d.DecodeElement(&s, &start); err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("port %q: %w", s, err)
	}
	*p = portValue(n)
	return nil
}

// appInstances reads the JSON "instance" member, an array or, from servers
// that unwrap single-element lists, one object.
type appInstances []appInstance

func (l *appInstances) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var one appInstance
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = appInstances{one}
		return nil
	}
	return json.Unmarshal(b, (*[]appInstance)(l))
}

// parseApp reads GET /apps/APP: JSON {"application":{"instance":[...]}}, or
// XML <application><instance>... from a server that ignores Accept.
func parseApp(b []byte) ([]appInstance, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '<' {
		var x struct {
			Instances []appInstance `xml:"instance"`
		}
		if err := xml.Unmarshal(b, &x); err != nil {
			return nil, fmt.Errorf("decoding XML application: %w", err)
		}
		return x.Instances, nil
	}
	var env struct {
		Application *struct {
			Instances appInstances `json:"instance"`
		} `json:"application"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("decoding JSON application: %w", err)
	}
	if env.Application == nil {
		return nil, errors.New("response has no application")
	}
	return env.Application.Instances, nil
}
