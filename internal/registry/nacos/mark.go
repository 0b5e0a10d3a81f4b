package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

// mark changes the weight/enabled flag of an instance the app registered
// itself, through the Nacos HTTP ops API. It speaks to every server version
// it may meet, learning which dialect answers:
//
//   - Nacos 1.x/2.x: detail GET, PATCH (always with weight, enabled and
//     metadata, because PATCH starts from weight 1 / enabled true);
//   - Nacos 3.x: v1 writes answer 410 Gone; use the v3 admin API;
//   - Polaris (our test server): detail GET and PATCH answer 405; read the
//     instance from the list and PUT it back with its current metadata.
//
// The instance is found by ip and port whatever cluster it registered in
// (the cluster only counts when --nacos-cluster names a non-default one):
// nacos-sdk-go registers without a cluster name, which real Nacos stores as
// DEFAULT and Polaris as "", and a server-side clusters=DEFAULT filter hides
// the latter. Writes use the cluster the server holds for the instance.
// Reads come first so no-op writes are skipped (Polaris answers 500 to them).
type mark struct {
	key      instanceKey
	servers  []server
	offline  string  // weight|disable|both
	weight   float64 // restored by Online
	user     string
	password string // secret: never logged, scrubbed from errors
	timeout  time.Duration
	log      *slog.Logger
	hc       *http.Client
	list     failover.List // which server answered last
	now      func() time.Time

	mu           sync.Mutex
	token        string    // secret: never logged, scrubbed from errors
	tokenRefresh time.Time // log in again after this
	noDetail     bool      // detail GET answered 405: read from the list
	noPatch      bool      // PATCH answered 405: write with PUT straight away
	v3           bool      // v1 answered 410: use the v3 admin API
	sentDisable  bool      // Offline sent enabled=false: the list hides the instance now
	absentSince  time.Time // first of the Online reads in a row that did not find the instance
	// held is the instance as Hold found it in rotation (its weight is
	// the one Online restores), nil when Hold has not taken it out.
	held *instance
	// told: AppEnv told the app to register itself at weight 0, so a
	// weight-0 registration is ours to put in rotation, not a stale mark.
	told bool
	// onlineDone: Online succeeded; Keep looks only after it.
	onlineDone bool
	// putAt is when Online or Keep last wrote the instance in rotation:
	// for readLag after it, a read may still show the state from before
	// (see Offline).
	putAt time.Time

	// stopping is set when Offline begins: Keep writes nothing after it.
	// keepMu is held by a Keep's read and write and taken by Offline, so
	// that a Keep in flight ends before Offline's first request.
	stopping atomic.Bool
	keepMu   sync.Mutex

	// hiddenAfter is how long Online waits for the instance before its
	// error mentions a disabled instance (see onlineHidden).
	hiddenAfter time.Duration
}

const hiddenAfter = 10 * time.Second

// readLag is how long a server's reads may lag its writes: Polaris serves
// the list from a cache rebuilt every second (allow 3 to 5 s, test-bed.md).
const readLag = 5 * time.Second

// putting notes that a write putting the instance in rotation goes out:
// before it, since a write whose answer is lost may have landed.
func (m *mark) putting() {
	m.mu.Lock()
	m.putAt = m.now()
	m.mu.Unlock()
}

// putIn is Online's write putting the instance in rotation, unless the
// offline step began. Once sent it is not cut short by the stop, only by
// the timeout: a request the client abandons may still be applied by the
// server, beside the offline step's read and write, and put the pod back
// in rotation through the drain. The offline step waits for its answer
// (keepMu), as for Keep's; the stop ends Online's ctx before it begins.
func (m *mark) putIn(ctx context.Context, inst *instance, weight float64) error {
	m.keepMu.Lock()
	defer m.keepMu.Unlock()
	if ctx.Err() != nil {
		return fmt.Errorf("not putting instance %s in rotation: the stop began", m.key)
	}
	return m.putInLocked(ctx, inst, weight)
}

// putInLocked is putIn's write, for a caller that holds keepMu.
func (m *mark) putInLocked(ctx context.Context, inst *instance, weight float64) error {
	wctx, cancel := registry.Uncut(ctx, m.timeout)
	defer cancel()
	m.putting()
	return m.write(wctx, inst, weight, true)
}

// newMark builds mark mode from o, which has its defaults.
func newMark(o Options, servers []server, log *slog.Logger) *mark {
	return &mark{
		key:      keyFrom(o),
		servers:  servers,
		offline:  o.Offline,
		weight:   o.Weight,
		user:     o.Username,
		password: o.Password,
		timeout:  o.Timeout,
		log:      log,
		hc:       failover.NewHTTPClient("", ""),
		now:      time.Now,

		hiddenAfter: hiddenAfter,
	}
}

func (m *mark) Name() string { return "nacos" }

// SelfRegistered: in mark mode the app registers itself, before it is ready.
func (m *mark) SelfRegistered() bool { return true }

// SelfRegistered: in register mode gracefulinit registers the instance
// once the app is ready; before then there is none.
func (h *helper) SelfRegistered() bool { return false }

// EnvWeight is the variable Spring Cloud Alibaba binds to
// spring.cloud.nacos.discovery.weight, the weight NacosServiceRegistry
// registers the instance with.
const EnvWeight = "SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT"

// maxWeight is the largest weight Nacos accepts; minWeight the smallest
// that --nacos-weight takes (above 0).
const (
	maxWeight = 10000
	minWeight = 0.01
)

// AppEnv is registry.AppEnver: the app registers itself at weight 0, which
// every Nacos client's healthy selection skips (selectInstances,
// SelectOneHealthyInstance), so no consumer picks it before Online puts it
// in rotation. Weight 0 rather than enabled=false: a disabled instance
// leaves the list, and a server without a detail read (Polaris) would then
// show gracefulinit nothing to put back. Hold then disables it as well
// (--nacos-offline). A weight the environment already gives is the app's
// own: it becomes the weight Online restores; weight 0 there is what
// gracefulinit would tell, and the app is told as well.
func (m *mark) AppEnv(lookup func(string) (string, bool)) []string {
	if v, ok := lookup(EnvWeight); ok {
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err == nil && w == 0 {
			// What gracefulinit would tell it: a told app, put in
			// rotation at --nacos-weight and kept there (Keep).
			m.mu.Lock()
			m.told = true
			m.mu.Unlock()
			m.log.Info("nacos: the environment already tells the app to register itself at weight 0; put in rotation at --nacos-weight once it is ready",
				"variable", EnvWeight, "weight", m.weight)
			return nil
		}
		// The range --nacos-weight takes: a weight below 0.01 would be
		// stored as 0 by a server that keeps whole numbers (Polaris).
		if err != nil || math.IsNaN(w) || math.IsInf(w, 0) || w < minWeight || w > maxWeight {
			m.log.Warn("nacos: the environment sets the app's weight to a value gracefulinit cannot restore; left as it is, so the app registers itself with it and the hold takes it out only when it sees it",
				"variable", EnvWeight, "want", "0 (out of rotation), or a number from 0.01 to 10000")
			return nil
		}
		m.weight = w
		m.log.Info("nacos: the app's weight from its environment is the weight put back once it is ready", "variable", EnvWeight, "weight", w)
	}
	m.mu.Lock()
	m.told = true
	m.mu.Unlock()
	return []string{EnvWeight + "=0"}
}

// zeroWeight and disable say what Offline changes (--nacos-offline).
func (m *mark) zeroWeight() bool { return m.offline != "disable" }
func (m *mark) disable() bool    { return m.offline != "weight" }

// errNotRegistered means the server does not know the instance.
var errNotRegistered = errors.New("instance not registered")

// instance is what a read returns about the app's instance.
type instance struct {
	Cluster  string // as the server holds it: "" for Polaris's cluster-less gRPC registrations
	Weight   float64
	Enabled  *bool // nil: this read does not say (the 1.x/2.x detail GET)
	Healthy  bool
	Metadata map[string]string
}

func (i *instance) enabledString() string {
	if i.Enabled == nil {
		return "unknown"
	}
	return strconv.FormatBool(*i.Enabled)
}

// host is one entry of the service's instance list.
type host struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     *bool             `json:"enabled"`
	Metadata    map[string]string `json:"metadata"`
}

// lookup is the outcome of a read: the instance (nil when not found) and,
// when the list was read, every host the server listed.
type lookup struct {
	inst   *instance
	hosts  []host
	listed bool
}

// held describes the listed hosts as ip:port:cluster, for logs that must say
// what the server holds when the app's instance is not among them.
func held(hosts []host) string {
	if len(hosts) == 0 {
		return "no instances"
	}
	parts := make([]string, 0, len(hosts))
	for _, h := range hosts {
		parts = append(parts, fmt.Sprintf("%s:%d:%s", h.IP, h.Port, h.ClusterName))
	}
	return strings.Join(parts, ", ")
}

// Online waits for the app's own registration (an error while it is absent;
// the caller retries) and repairs a stale offline mark: Nacos keeps a weight
// override across a quick re-registration (alibaba/nacos#12033), so an app
// restarted within about 60 s of its last drain comes back at weight 0 or
// disabled.
func (m *mark) Online(ctx context.Context) error {
	err := m.online(ctx)
	if err == nil {
		m.mu.Lock()
		m.onlineDone = true
		m.mu.Unlock()
	}
	return err
}

func (m *mark) online(ctx context.Context) error {
	l, err := m.read(ctx)
	if err != nil {
		return fmt.Errorf("read instance %s: %w", m.key, err)
	}
	m.mu.Lock()
	held := m.held
	m.mu.Unlock()
	if held != nil {
		return m.release(ctx, l, held)
	}
	inst := l.inst
	if inst == nil {
		return m.onlineHidden(l)
	}
	m.mu.Lock()
	m.absentSince = time.Time{}
	m.mu.Unlock()
	needWeight := inst.Weight <= 0
	needEnable := inst.Enabled != nil && !*inst.Enabled
	// A disabled flag is invisible to the 1.x/2.x detail read: when Offline
	// disables, assert enabled=true rather than trust it.
	assertEnable := inst.Enabled == nil && m.disable()
	m.log.Info("nacos instance found", "instance", m.key.String(), "cluster", inst.Cluster, "weight", inst.Weight,
		"enabled", inst.enabledString(), "healthy", inst.Healthy)
	if !needWeight && !needEnable && !assertEnable {
		return nil
	}
	weight := inst.Weight
	if needWeight {
		weight = m.weight
	}
	if err := m.putIn(ctx, inst, weight); err != nil {
		if errors.Is(err, errNotRegistered) {
			return fmt.Errorf("instance %s vanished while being put back in rotation", m.key)
		}
		return fmt.Errorf("put instance %s back in rotation: %w", m.key, err)
	}
	m.mu.Lock()
	m.sentDisable = false
	m.mu.Unlock()
	m.mu.Lock()
	told := m.told
	m.mu.Unlock()
	if told && needWeight && !needEnable {
		m.log.Info("nacos instance registered itself at weight 0, as its environment told it; put in rotation now that the app is ready",
			"instance", m.key.String(), "weight", weight, "enabled", true)
	} else if needWeight || needEnable {
		m.log.Warn("nacos instance carried a stale offline mark from an earlier shutdown; put it back in rotation",
			"instance", m.key.String(), "weight_was", inst.Weight, "enabled_was", inst.enabledString(),
			"weight", weight, "enabled", true)
	} else {
		m.log.Info("nacos instance enabled flag asserted", "instance", m.key.String(), "weight", weight)
	}
	return nil
}

// Hold is registry.Holder: one look at the app's own registration while
// the app starts. An instance in rotation is taken out by Offline's path
// (--nacos-offline) and remembered, so that Online restores its weight and
// enables it once the app is ready.
func (m *mark) Hold(ctx context.Context) (registry.HoldState, error) {
	l, err := m.read(ctx)
	if err != nil {
		return registry.HoldAbsent, fmt.Errorf("read instance %s: %w", m.key, err)
	}
	m.mu.Lock()
	holding, hidden, told := m.held != nil, m.sentDisable && l.listed, m.told
	m.mu.Unlock()
	inst := l.inst
	if inst == nil {
		if holding && hidden {
			return registry.HoldKept, nil // disabled by us: the list hides it
		}
		return registry.HoldAbsent, nil
	}
	// The registration AppEnv asked for: out of rotation from its first
	// moment, and ours to put in once the app is ready.
	registeredOut := told && !holding && inst.Weight <= 0
	orig := *inst
	if orig.Weight <= 0 {
		orig.Weight = m.weight
	}
	weightOut := !m.zeroWeight() || inst.Weight <= 0
	// The 1.x/2.x detail read does not show enabled: what we disabled
	// stays disabled there (the override outlives a re-registration).
	enableOut := !m.disable() || (inst.Enabled != nil && !*inst.Enabled) || (inst.Enabled == nil && holding)
	if weightOut && enableOut {
		if registeredOut {
			m.mu.Lock()
			m.held = &orig
			m.mu.Unlock()
			return registry.HoldRegisteredOut, nil
		}
		return registry.HoldKept, nil
	}
	weight, enabled := inst.Weight, true
	if m.zeroWeight() {
		weight = 0
	}
	if m.disable() {
		enabled = false
	}
	// Remembered before the write: a write whose answer is lost (a
	// timeout) may have landed, and a disabled instance is one that no
	// read shows where there is no detail read (Polaris). Online then
	// puts it back from what this look saw.
	m.mu.Lock()
	prevHeld, prevSent := m.held, m.sentDisable
	m.held = &orig
	if m.disable() {
		m.sentDisable = true
	}
	m.mu.Unlock()
	if err := m.write(ctx, inst, weight, enabled); err != nil {
		if errors.Is(err, errNotRegistered) {
			m.mu.Lock()
			m.held, m.sentDisable = prevHeld, prevSent
			m.mu.Unlock()
			return registry.HoldAbsent, nil
		}
		return registry.HoldAbsent, fmt.Errorf("hold instance %s out of rotation: %w", m.key, err)
	}
	m.log.Debug("nacos instance held out of rotation until the app is ready", "instance", m.key.String(), "cluster", inst.Cluster,
		"weight_was", inst.Weight, "weight", weight, "enabled", enabled)
	if registeredOut {
		return registry.HoldRegisteredOut, nil
	}
	return registry.HoldApplied, nil
}

// Keep is registry.Keeper: once Online is done, a told app that
// registered itself again (at weight 0, as told: a Nacos 1.x beat answered
// 404, a server that forgot the online step's change, as Polaris does on
// every registration) is put back at the weight Online restored. Only an
// enabled instance at weight 0 is; a disabled one is an operator's or
// the offline step's doing, and left alone. An operator's weight 0 cannot
// be told from the app's own: while the app runs, take an instance out
// by hand with enabled=false.
func (m *mark) Keep(ctx context.Context) (bool, error) {
	m.mu.Lock()
	told, online := m.told, m.onlineDone
	m.mu.Unlock()
	if !told || !online || m.stopping.Load() {
		return false, nil
	}
	m.keepMu.Lock()
	defer m.keepMu.Unlock()
	if m.stopping.Load() {
		return false, nil
	}
	l, err := m.read(ctx)
	if err != nil {
		return false, fmt.Errorf("read instance %s: %w", m.key, err)
	}
	inst := l.inst
	if inst == nil || inst.Weight > 0 || inst.Enabled != nil && !*inst.Enabled {
		return false, nil
	}
	if err := m.putInLocked(ctx, inst, m.weight); err != nil {
		if errors.Is(err, errNotRegistered) {
			return false, nil
		}
		return false, fmt.Errorf("put instance %s back in rotation: %w", m.key, err)
	}
	m.log.Info("nacos instance registered again at weight 0, as its environment told it at start; put back in rotation",
		"instance", m.key.String(), "weight", m.weight)
	return true, nil
}

// release puts the instance Hold took out back in rotation, with the
// weight it had. Where the list hides a disabled instance and no other
// read shows it (Polaris has none; a detail read asked for the configured
// cluster misses an app registered in another), it is written from what
// Hold saw: it was there, so the write does not land on a registration
// the server does not show.
func (m *mark) release(ctx context.Context, l lookup, held *instance) error {
	inst := l.inst
	m.mu.Lock()
	blind := inst == nil && l.listed && m.sentDisable
	m.mu.Unlock()
	switch {
	case inst == nil && !blind:
		return fmt.Errorf("instance %s held out of rotation while the app started is no longer registered (waiting for the app to register again)", m.key)
	case inst == nil:
		inst = held
	}
	weight := inst.Weight
	if weight <= 0 || m.zeroWeight() {
		weight = held.Weight
	}
	if err := m.putIn(ctx, inst, weight); err != nil {
		if errors.Is(err, errNotRegistered) {
			return fmt.Errorf("instance %s vanished while being put in rotation", m.key)
		}
		return fmt.Errorf("put instance %s in rotation after the hold: %w", m.key, err)
	}
	m.mu.Lock()
	m.held, m.sentDisable, m.absentSince = nil, false, time.Time{}
	m.mu.Unlock()
	m.log.Info("nacos hold released: instance in rotation now that the app is ready", "instance", m.key.String(), "weight", weight, "enabled", true)
	return nil
}

// onlineHidden explains an instance no read shows. The list hides disabled
// instances; where there is no detail read (Polaris) nothing shows them, so
// a stale enabled=false cannot be told from an app still registering. It is
// not written blind: Polaris replaces metadata with what a write carries,
// turns the instance into a heartbeat-checked one that a gRPC app never
// beats (unhealthy), and a write landing on a registration its list does
// not show yet wiped it. Polaris itself resets enabled when the app
// registers again, which is what a restarted app does. After hiddenAfter the
// error says so; the caller's retries turn it into a WARN.
func (m *mark) onlineHidden(l lookup) error {
	now := m.now()
	m.mu.Lock()
	if m.absentSince.IsZero() {
		m.absentSince = now
	}
	hint := m.noDetail && !m.v3 && now.Sub(m.absentSince) >= m.hiddenAfter
	m.mu.Unlock()
	err := fmt.Errorf("instance %s is not registered yet (waiting for the app to register itself; the server lists %s)",
		m.key, held(l.hosts))
	if hint {
		err = fmt.Errorf("%w; this server cannot show a disabled instance: if it is disabled, enable it in the console", err)
	}
	return err
}

// Offline sets the instance's weight to 0 and/or enabled=false, as
// --nacos-offline says. An instance the server does not hold is an error
// wrapping registry.ErrNotFound, logged with what the server does hold.
func (m *mark) Offline(ctx context.Context) error {
	// A Keep in flight ends first (its ctx ended with the stop); none
	// writes after this.
	m.keepMu.Lock()
	m.stopping.Store(true)
	m.keepMu.Unlock()
	l, err := m.read(ctx)
	if err != nil {
		return fmt.Errorf("read instance %s: %w", m.key, err)
	}
	inst := l.inst
	m.mu.Lock()
	// Put in rotation by us a moment ago: a read that lags the write may
	// show the instance hidden (disabled by the hold) or at the told
	// weight 0 while it is in rotation.
	lagging := !m.putAt.IsZero() && m.now().Sub(m.putAt) < readLag
	m.mu.Unlock()
	if inst == nil {
		if lagging {
			// Before disabledByUs: the hold's disable is older than
			// the write (maybe its answer lost) that enabled it.
			return fmt.Errorf("instance %s, put in rotation a moment ago, is not listed yet (the server's reads lag its writes): reading again", m.key)
		}
		m.mu.Lock()
		disabledByUs := m.sentDisable && l.listed
		m.mu.Unlock()
		if disabledByUs {
			// An earlier attempt (whose answer may have been lost)
			// found the instance and disabled it; the list hides it now.
			m.log.Info("nacos instance no longer listed: disabled earlier (by the hold while the app started, or an earlier attempt of this step)", "instance", m.key.String())
			return nil
		}
		return m.notFound(ctx, l)
	}
	weight, enabled := inst.Weight, true
	if inst.Enabled != nil {
		enabled = *inst.Enabled
	}
	weightDone := !m.zeroWeight() || inst.Weight <= 0
	enableDone := !m.disable() || (inst.Enabled != nil && !*inst.Enabled)
	if weightDone && enableDone && !lagging {
		m.log.Info("nacos instance already out of rotation", "instance", m.key.String(),
			"weight", inst.Weight, "enabled", inst.enabledString())
		return nil
	}
	if m.zeroWeight() {
		weight = 0
	}
	if m.disable() {
		enabled = false
		m.mu.Lock()
		m.sentDisable = true
		m.mu.Unlock()
	}
	if err := m.write(ctx, inst, weight, enabled); err != nil {
		if errors.Is(err, errNotRegistered) {
			// Read a moment ago, gone now: the app deregistered, which
			// takes it out of rotation as well.
			m.log.Info("nacos instance deregistered meanwhile: nothing to take out of rotation", "instance", m.key.String())
			return nil
		}
		return fmt.Errorf("take instance %s out of rotation: %w", m.key, err)
	}
	m.log.Info("nacos instance taken out of rotation", "instance", m.key.String(), "cluster", inst.Cluster,
		"weight_was", inst.Weight, "weight", weight, "enabled", enabled)
	return nil
}

// notFound logs, at WARN, that Offline found nothing to take out, with what
// the server holds for the service, and returns the not-found error.
func (m *mark) notFound(ctx context.Context, l lookup) error {
	holds := held(l.hosts)
	if !l.listed {
		hosts, err := m.listHosts(ctx)
		if err != nil {
			holds = "unknown (" + err.Error() + ")"
		} else {
			holds = held(hosts)
		}
	}
	m.log.Warn("nacos instance not found: nothing was taken out of rotation", "searched", m.key.String(),
		"server_holds", holds)
	return fmt.Errorf("no instance %s:%d in %s (the server holds %s): %w", m.key.ip, m.key.port, m.key.groupedService(), holds, registry.ErrNotFound)
}

// Close has nothing to undo: the app deregisters its own instance.
func (m *mark) Close(context.Context) error {
	m.hc.CloseIdleConnections()
	return nil
}

// match picks the app's instance out of a list: ip and port, and the
// cluster only when a non-default one is configured. Among several (the
// same ip:port in two clusters) the default cluster wins.
func (m *mark) match(hosts []host) *host {
	var found *host
	for i := range hosts {
		h := &hosts[i]
		if h.IP != m.key.ip || h.Port != m.key.port {
			continue
		}
		if !m.key.defaultCluster() {
			if h.ClusterName == m.key.cluster {
				return h
			}
			continue
		}
		if isDefaultCluster(h.ClusterName) {
			return h
		}
		if found == nil {
			found = h
		}
	}
	return found
}

func (m *mark) commonParams() url.Values {
	return url.Values{
		"namespaceId": {m.key.namespace},
		"serviceName": {m.key.groupedService()},
		"ip":          {m.key.ip},
		"port":        {strconv.Itoa(m.key.port)},
	}
}

// read finds the instance: the detail GET where the server has one, else
// (and when the detail says 404, which a cluster mismatch also gives) the
// list.
func (m *mark) read(ctx context.Context) (lookup, error) {
	m.mu.Lock()
	v3, noDetail := m.v3, m.noDetail
	m.mu.Unlock()
	if v3 {
		return m.readV3(ctx)
	}
	if !noDetail {
		p := m.commonParams()
		p.Set("clusterName", m.key.cluster)
		p.Set("ephemeral", "true")
		resp, err := m.do(ctx, http.MethodGet, "/v1/ns/instance", p)
		if err != nil {
			return lookup{}, err
		}
		switch resp.status {
		case http.StatusOK:
			var d host
			if err := json.Unmarshal(resp.body, &d); err != nil {
				return lookup{}, resp.fail("unreadable instance detail: " + err.Error())
			}
			return lookup{inst: m.detail(d)}, nil
		case http.StatusNotFound:
			// Nacos's "no matched ip" (also for another cluster) and a
			// proxy's "no such page" look alike: let the list decide.
		case http.StatusMethodNotAllowed:
			m.mu.Lock()
			m.noDetail = true
			m.mu.Unlock()
		case http.StatusGone:
			m.setV3()
			return m.readV3(ctx)
		default:
			return lookup{}, resp.fail("")
		}
	}
	hosts, err := m.listHosts(ctx)
	if errors.Is(err, errGone) {
		m.setV3()
		return m.readV3(ctx)
	}
	if err != nil {
		return lookup{}, err
	}
	return m.fromList(hosts), nil
}

// instance is what the host's answer says of the instance, its cluster as
// the server holds it.
func (h host) instance() *instance {
	return &instance{Cluster: h.ClusterName, Weight: h.Weight, Enabled: h.Enabled, Healthy: h.Healthy, Metadata: h.Metadata}
}

// detail is the instance a detail read returned: it was asked for our
// cluster, so an answer without one holds it there.
func (m *mark) detail(d host) *instance {
	if d.ClusterName == "" {
		d.ClusterName = m.key.cluster
	}
	return d.instance()
}

func (m *mark) fromList(hosts []host) lookup {
	l := lookup{hosts: hosts, listed: true}
	if h := m.match(hosts); h != nil {
		l.inst = h.instance()
	}
	return l
}

// errGone is the v1 list's 410 (Nacos 3.x without v1 compatibility).
var errGone = errors.New("v1 API gone")

// listHosts reads every host of the service, healthy or not, in every
// cluster: a clusters filter would hide instances registered without a
// cluster name on servers that keep it empty (Polaris). The list never shows
// disabled instances.
func (m *mark) listHosts(ctx context.Context) ([]host, error) {
	p := url.Values{
		"namespaceId": {m.key.namespace},
		"serviceName": {m.key.groupedService()},
		"healthyOnly": {"false"},
	}
	resp, err := m.do(ctx, http.MethodGet, "/v1/ns/instance/list", p)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusGone {
		return nil, errGone
	}
	if resp.status != http.StatusOK {
		return nil, resp.fail("")
	}
	var l struct {
		Hosts []host `json:"hosts"`
	}
	if err := json.Unmarshal(resp.body, &l); err != nil {
		return nil, resp.fail("unreadable instance list: " + err.Error())
	}
	return l.Hosts, nil
}

// readV3 reads the v3 admin detail (Nacos 3.x stores an empty cluster as
// DEFAULT). A 404 there may be an instance in another cluster: the v1 list,
// where the server still serves it, finds it by ip and port.
func (m *mark) readV3(ctx context.Context) (lookup, error) {
	p := url.Values{
		"namespaceId": {m.key.namespace},
		"groupName":   {m.key.group},
		"serviceName": {m.key.service},
		"clusterName": {m.key.cluster},
		"ip":          {m.key.ip},
		"port":        {strconv.Itoa(m.key.port)},
	}
	resp, err := m.do(ctx, http.MethodGet, "/v3/admin/ns/instance", p)
	if err != nil {
		return lookup{}, err
	}
	if resp.status == http.StatusNotFound {
		hosts, err := m.listHosts(ctx)
		if err != nil {
			// Without a list there is nothing more to learn.
			return lookup{}, nil
		}
		return m.fromList(hosts), nil
	}
	if resp.status != http.StatusOK {
		return lookup{}, resp.fail("")
	}
	var r struct {
		Code int   `json:"code"`
		Data *host `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &r); err != nil {
		return lookup{}, resp.fail("unreadable instance detail: " + err.Error())
	}
	if r.Code != 0 || r.Data == nil {
		return lookup{}, resp.fail("")
	}
	return lookup{inst: m.detail(*r.Data)}, nil
}

func (m *mark) setV3() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.v3 {
		m.log.Info("nacos v1 API answered 410 Gone: using the v3 admin API (Nacos 3.x)")
	}
	m.v3 = true
}

// write sets weight and enabled on the instance, always both, and its
// metadata back as read: PATCH and the v3 partial update start from
// weight 1 / enabled true for omitted fields.
func (m *mark) write(ctx context.Context, inst *instance, weight float64, enabled bool) error {
	m.mu.Lock()
	v3 := m.v3
	m.mu.Unlock()
	if v3 {
		return m.writeV3(ctx, inst, weight, enabled)
	}
	p := m.commonParams()
	p.Set("clusterName", inst.Cluster)
	p.Set("weight", formatWeight(weight))
	p.Set("enabled", strconv.FormatBool(enabled))
	p.Set("ephemeral", "true")
	if inst.Metadata != nil {
		// What PATCH does with metadata it is not sent differs by
		// version; the current metadata sent back is right on all.
		p.Set("metadata", metadataJSON(inst.Metadata))
	}
	// Every round trip counts when the registry is slow at shutdown: skip
	// the PATCH once it was refused, and on a server without the detail
	// read (Polaris), which has no PATCH either.
	m.mu.Lock()
	skipPatch := m.noPatch || m.noDetail
	m.mu.Unlock()
	if skipPatch {
		return m.put(ctx, p)
	}
	resp, err := m.do(ctx, http.MethodPatch, "/v1/ns/instance", p)
	if err != nil {
		return err
	}
	switch resp.status {
	case http.StatusGone:
		m.setV3()
		return m.writeV3(ctx, inst, weight, enabled)
	case http.StatusMethodNotAllowed:
		m.mu.Lock()
		m.noPatch = true
		m.mu.Unlock()
		return m.put(ctx, p)
	}
	return writeResult(resp)
}

// writeResult reads a write's answer: 200 is done, 404 means the instance
// is not registered, anything else fails with the server's words.
func writeResult(resp *response) error {
	switch resp.status {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return errNotRegistered
	}
	return resp.fail("")
}

// put writes with PUT, which replaces metadata (and on Polaris flips
// healthy without it): the instance's current metadata goes back unchanged.
func (m *mark) put(ctx context.Context, p url.Values) error {
	resp, err := m.do(ctx, http.MethodPut, "/v1/ns/instance", p)
	if err != nil {
		return err
	}
	if resp.status == http.StatusInternalServerError && strings.Contains(string(resp.body), "no change") {
		// Polaris refuses a PUT that changes nothing with a 500; its
		// list lags writes by its cache interval, so a read can show
		// the state from just before our own earlier write.
		return nil
	}
	return writeResult(resp)
}

func (m *mark) writeV3(ctx context.Context, inst *instance, weight float64, enabled bool) error {
	p := m.commonParams() // partial insists on GROUP@@service, as v1 takes it
	p.Set("cluster", inst.Cluster)
	p.Set("weight", formatWeight(weight))
	p.Set("enabled", strconv.FormatBool(enabled))
	// A required parameter; the current metadata keeps it unchanged.
	p.Set("metadata", metadataJSON(inst.Metadata))
	resp, err := m.do(ctx, http.MethodPut, "/v3/admin/ns/instance/partial", p)
	if err != nil {
		return err
	}
	return writeResult(resp)
}

func formatWeight(w float64) string { return strconv.FormatFloat(w, 'f', -1, 64) }

func metadataJSON(md map[string]string) string {
	if md == nil {
		md = map[string]string{}
	}
	b, err := json.Marshal(md)
	if err != nil {
		return "{}"
	}
	return string(b)
}
