package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/config"
)

// mark changes the weight/enabled flag of an instance the app registered
// itself, through the Nacos HTTP ops API. It speaks to every server version
// it may meet, learning which dialect answers:
//
//   - Nacos 1.x/2.x: detail GET, PATCH (always with both weight and enabled,
//     because PATCH starts from weight 1 / enabled true);
//   - Nacos 3.x: v1 writes answer 410 Gone; use the v3 admin API;
//   - Polaris (our test server): detail GET and PATCH answer 405; read the
//     instance from the list and PUT it back with its current metadata.
//
// Reads come first so no-op writes are skipped (Polaris answers 500 to them).
type mark struct {
	key      instanceKey
	servers  []server
	offline  string  // weight|disable
	weight   float64 // restored by Online
	user     string
	password string // secret: never logged, scrubbed from errors
	timeout  time.Duration
	log      *slog.Logger
	hc       *http.Client
	now      func() time.Time

	mu           sync.Mutex
	preferred    int       // index of the last server that answered
	token        string    // secret: never logged, scrubbed from errors
	tokenRefresh time.Time // log in again after this
	noDetail     bool      // detail GET answered 405: read from the list
	noPatch      bool      // PATCH answered 405: write with PUT straight away
	v3           bool      // v1 answered 410: use the v3 admin API
}

func newMark(cfg *config.Config, servers []server, log *slog.Logger) *mark {
	timeout := cfg.RegistryTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	weight := cfg.Nacos.Weight
	if weight <= 0 {
		weight = 1 // Spring Cloud Alibaba's default
	}
	offline := cfg.Nacos.Offline
	if offline == "" {
		offline = "weight"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	return &mark{
		key:      keyFrom(cfg),
		servers:  servers,
		offline:  offline,
		weight:   weight,
		user:     cfg.Nacos.Username,
		password: cfg.Nacos.Password,
		timeout:  timeout,
		log:      log,
		hc:       &http.Client{Transport: tr},
		now:      time.Now,
	}
}

func (m *mark) Name() string { return "nacos" }

// errNotRegistered means the server does not know the instance.
var errNotRegistered = errors.New("instance not registered")

// instance is what a read returns about the app's instance.
type instance struct {
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

// Online waits for the app's own registration (an error while it is absent;
// the caller retries) and repairs a stale offline mark: Nacos keeps a weight
// override across a quick re-registration (alibaba/nacos#12033), so an app
// restarted within about 60 s of its last drain comes back at weight 0.
func (m *mark) Online(ctx context.Context) error {
	inst, err := m.read(ctx)
	if err != nil {
		return fmt.Errorf("read instance %s: %w", m.key, err)
	}
	if inst == nil {
		return fmt.Errorf("instance %s is not registered yet (waiting for the app to register itself)", m.key)
	}
	needWeight := inst.Weight <= 0
	needEnable := inst.Enabled != nil && !*inst.Enabled
	// A disabled flag is invisible to the 1.x/2.x detail read: with
	// --nacos-offline disable, assert enabled=true rather than trust it.
	assertEnable := inst.Enabled == nil && m.offline == "disable"
	m.log.Info("nacos instance found", "instance", m.key.String(), "weight", inst.Weight,
		"enabled", inst.enabledString(), "healthy", inst.Healthy)
	if !needWeight && !needEnable && !assertEnable {
		return nil
	}
	weight := inst.Weight
	if needWeight {
		weight = m.weight
	}
	if err := m.write(ctx, inst, weight, true); err != nil {
		if errors.Is(err, errNotRegistered) {
			return fmt.Errorf("instance %s vanished while being put back in rotation", m.key)
		}
		return fmt.Errorf("put instance %s back in rotation: %w", m.key, err)
	}
	if needWeight || needEnable {
		m.log.Warn("nacos instance carried a stale offline mark from an earlier shutdown; put it back in rotation",
			"instance", m.key.String(), "weight_was", inst.Weight, "enabled_was", inst.enabledString(),
			"weight", weight, "enabled", true)
	} else {
		m.log.Info("nacos instance enabled flag asserted", "instance", m.key.String(), "weight", weight)
	}
	return nil
}

// Offline sets the instance's weight to 0 (or enabled=false with
// --nacos-offline disable). An unregistered instance is nothing to do.
func (m *mark) Offline(ctx context.Context) error {
	inst, err := m.read(ctx)
	if err != nil {
		return fmt.Errorf("read instance %s: %w", m.key, err)
	}
	if inst == nil {
		m.log.Info("nacos instance not registered: nothing to take out of rotation", "instance", m.key.String())
		return nil
	}
	weight, enabled := inst.Weight, true
	if inst.Enabled != nil {
		enabled = *inst.Enabled
	}
	if m.offline == "disable" {
		if inst.Enabled != nil && !*inst.Enabled {
			m.log.Info("nacos instance already disabled", "instance", m.key.String())
			return nil
		}
		enabled = false
	} else {
		if inst.Weight <= 0 {
			m.log.Info("nacos instance already at weight 0", "instance", m.key.String())
			return nil
		}
		weight = 0
	}
	if err := m.write(ctx, inst, weight, enabled); err != nil {
		if errors.Is(err, errNotRegistered) {
			m.log.Info("nacos instance deregistered meanwhile: nothing to take out of rotation", "instance", m.key.String())
			return nil
		}
		return fmt.Errorf("take instance %s out of rotation: %w", m.key, err)
	}
	m.log.Info("nacos instance taken out of rotation", "instance", m.key.String(),
		"weight_was", inst.Weight, "weight", weight, "enabled", enabled)
	return nil
}

// Close has nothing to undo: the app deregisters its own instance.
func (m *mark) Close(context.Context) error {
	m.hc.CloseIdleConnections()
	return nil
}

func (m *mark) commonParams() url.Values {
	return url.Values{
		"namespaceId": {m.key.namespace},
		"serviceName": {m.key.groupedService()},
		"ip":          {m.key.ip},
		"port":        {strconv.Itoa(m.key.port)},
	}
}

// read returns the instance, or nil when the server does not know it.
func (m *mark) read(ctx context.Context) (*instance, error) {
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
			return nil, err
		}
		switch resp.status {
		case http.StatusOK:
			var d struct {
				Weight   float64           `json:"weight"`
				Healthy  bool              `json:"healthy"`
				Enabled  *bool             `json:"enabled"`
				Metadata map[string]string `json:"metadata"`
			}
			if err := json.Unmarshal(resp.body, &d); err != nil {
				return nil, resp.fail("unreadable instance detail: " + err.Error())
			}
			return &instance{Weight: d.Weight, Enabled: d.Enabled, Healthy: d.Healthy, Metadata: d.Metadata}, nil
		case http.StatusNotFound:
			// Nacos's "no matched ip" and a proxy's "no such page" look
			// alike: let the list decide.
		case http.StatusMethodNotAllowed:
			m.mu.Lock()
			m.noDetail = true
			m.mu.Unlock()
		case http.StatusGone:
			m.setV3()
			return m.readV3(ctx)
		default:
			return nil, resp.fail("")
		}
	}
	return m.readList(ctx)
}

func (m *mark) readList(ctx context.Context) (*instance, error) {
	p := url.Values{
		"namespaceId": {m.key.namespace},
		"serviceName": {m.key.groupedService()},
		"clusters":    {m.key.cluster},
		"healthyOnly": {"false"},
	}
	resp, err := m.do(ctx, http.MethodGet, "/v1/ns/instance/list", p)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusGone {
		m.setV3()
		return m.readV3(ctx)
	}
	if resp.status != http.StatusOK {
		return nil, resp.fail("")
	}
	var l struct {
		Hosts []struct {
			IP          string            `json:"ip"`
			Port        int               `json:"port"`
			ClusterName string            `json:"clusterName"`
			Weight      float64           `json:"weight"`
			Healthy     bool              `json:"healthy"`
			Enabled     *bool             `json:"enabled"`
			Metadata    map[string]string `json:"metadata"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(resp.body, &l); err != nil {
		return nil, resp.fail("unreadable instance list: " + err.Error())
	}
	for _, h := range l.Hosts {
		if h.IP != m.key.ip || h.Port != m.key.port {
			continue
		}
		if h.ClusterName != "" && h.ClusterName != m.key.cluster {
			continue
		}
		return &instance{Weight: h.Weight, Enabled: h.Enabled, Healthy: h.Healthy, Metadata: h.Metadata}, nil
	}
	return nil, nil
}

func (m *mark) readV3(ctx context.Context) (*instance, error) {
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
		return nil, err
	}
	if resp.status == http.StatusNotFound {
		return nil, nil
	}
	if resp.status != http.StatusOK {
		return nil, resp.fail("")
	}
	var r struct {
		Code int `json:"code"`
		Data *struct {
			Weight   float64           `json:"weight"`
			Healthy  bool              `json:"healthy"`
			Enabled  *bool             `json:"enabled"`
			Metadata map[string]string `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &r); err != nil {
		return nil, resp.fail("unreadable instance detail: " + err.Error())
	}
	if r.Code != 0 || r.Data == nil {
		return nil, resp.fail("")
	}
	d := r.Data
	return &instance{Weight: d.Weight, Enabled: d.Enabled, Healthy: d.Healthy, Metadata: d.Metadata}, nil
}

func (m *mark) setV3() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.v3 {
		m.log.Info("nacos v1 API answered 410 Gone: using the v3 admin API (Nacos 3.x)")
	}
	m.v3 = true
}

// write sets weight and enabled on the instance, always both: PATCH and the
// v3 partial update start from weight 1 / enabled true for omitted fields.
func (m *mark) write(ctx context.Context, inst *instance, weight float64, enabled bool) error {
	m.mu.Lock()
	v3 := m.v3
	m.mu.Unlock()
	if v3 {
		return m.writeV3(ctx, inst, weight, enabled)
	}
	p := m.commonParams()
	p.Set("clusterName", m.key.cluster)
	p.Set("weight", formatWeight(weight))
	p.Set("enabled", strconv.FormatBool(enabled))
	p.Set("ephemeral", "true")
	// Every round trip counts when the registry is slow at shutdown: skip
	// the PATCH once it was refused, and on a server without the detail
	// read (Polaris), which has no PATCH either.
	m.mu.Lock()
	skipPatch := m.noPatch || m.noDetail
	m.mu.Unlock()
	if skipPatch {
		return m.put(ctx, inst, p)
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
		return m.put(ctx, inst, p)
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
func (m *mark) put(ctx context.Context, inst *instance, p url.Values) error {
	p.Set("metadata", metadataJSON(inst.Metadata))
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
	p := url.Values{
		"namespaceId": {m.key.namespace},
		"serviceName": {m.key.groupedService()}, // partial insists on GROUP@@service
		"ip":          {m.key.ip},
		"port":        {strconv.Itoa(m.key.port)},
		"cluster":     {m.key.cluster},
		"weight":      {formatWeight(weight)},
		"enabled":     {strconv.FormatBool(enabled)},
		// A required parameter; the current metadata keeps it unchanged.
		"metadata": {metadataJSON(inst.Metadata)},
	}
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
