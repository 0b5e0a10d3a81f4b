package nacos

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

// Options describe the app's Nacos instance and how to reach the servers.
// A zero field means its default, as stated.
type Options struct {
	// Addrs are the servers: "host:port", "http(s)://host:port", or with a
	// path, which is Nacos's context path (default /nacos). Required.
	Addrs     []string
	Namespace string // default "public"
	Group     string // default "DEFAULT_GROUP"
	// Cluster names the instance's cluster; default DEFAULT, which mark
	// mode treats as "whatever cluster the instance is in".
	Cluster string
	Service string // the service name (spring.application.name); required
	IP      string // the instance's IP; required
	Port    int    // the instance's port; required
	Mode    string // "mark" (default): the app registers itself; "register"
	// Offline is what mark mode's Offline changes: "weight" (to 0),
	// "disable" (enabled=false) or "both" (default).
	Offline  string
	Weight   float64           // restored by mark mode's Online, registered by register mode; default 1
	Metadata map[string]string // register mode: the instance's metadata
	Username string
	Password string // secret: never logged
	CacheDir string // register mode: the SDK's cache directory
	// Helper is register mode's helper binary; default gracefulinit-nacos
	// next to the running executable.
	Helper string
	// Version is gracefulinit's own release: register mode refuses a
	// helper that reports another. Empty skips the check.
	Version string
	// EnvPrefix marks the variables that are gracefulinit's own settings:
	// they are not passed on to the helper.
	EnvPrefix string
	Timeout   time.Duration // bound of a call whose context has no deadline; default 5s
}

// The defaults of Options, which are also the flags' defaults.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
	DefaultMode      = "mark"
	DefaultOffline   = "both"
	DefaultWeight    = 1.0 // Spring Cloud Alibaba's default
	// DrainCacheMax is the longest a consumer keeps calling an instance
	// Nacos took out: Spring Cloud LoadBalancer's 35 s cache plus 5 s for
	// the change to reach it (measured: a 35 s cache called 35.0 s after
	// the offline). The drain's --drain-cache-max default with Nacos.
	DrainCacheMax = 40 * time.Second
)

// withDefaults fills every zero field that has a default.
func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Cluster == "" {
		o.Cluster = DefaultCluster
	}
	if o.Mode == "" {
		o.Mode = DefaultMode
	}
	if o.Offline == "" {
		o.Offline = DefaultOffline
	}
	if o.Weight <= 0 {
		o.Weight = DefaultWeight
	}
	if o.Timeout <= 0 {
		o.Timeout = registry.DefaultTimeout
	}
	return o
}

// Resolve fills o's defaults, checks it and returns it with its addresses
// normalised (a scheme added, no trailing slash). It is the one validation
// of the Nacos settings: gracefulinit's configuration calls it with the
// flags' names, New calls it again. name says how an error names a setting
// ("nacos-addr" as --nacos-addr, or the variable that set it); nil: as the
// flag.
func (o Options) Resolve(name func(flag string) string) (Options, error) {
	if name == nil {
		name = func(flag string) string { return "--" + flag }
	}
	o = o.withDefaults()
	if len(o.Addrs) == 0 {
		return o, fmt.Errorf("--registry nacos needs %s, e.g. http://nacos:8848", name("nacos-addr"))
	}
	addrs := make([]string, len(o.Addrs))
	for i, a := range o.Addrs {
		if strings.TrimSpace(a) == "" {
			return o, fmt.Errorf("%s lists an empty address: remove the extra comma", name("nacos-addr"))
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		if _, err := parseServer(a); err != nil {
			return o, fmt.Errorf("%s %q: want a URL like http://nacos:8848 (ports run from 1 to 65535)", name("nacos-addr"), redact.URL(a))
		}
		addrs[i] = strings.TrimRight(a, "/")
	}
	o.Addrs = addrs
	switch {
	case o.Service == "":
		return o, fmt.Errorf("--registry nacos needs %s, the app's service name (spring.application.name)", name("service"))
	case net.ParseIP(o.IP) == nil:
		return o, fmt.Errorf("%s %q: want an IP address, or set POD_IP from the downward API", name("ip"), o.IP)
	case o.Port <= 0 || o.Port > 65535:
		return o, fmt.Errorf("--registry nacos needs the app's port: add %s, e.g. 8080", name("port"))
	}
	switch o.Offline {
	case "both", "weight", "disable":
	default:
		return o, fmt.Errorf("%s %q: use both, weight or disable", name("nacos-offline"), o.Offline)
	}
	switch o.Mode {
	case "mark", "register":
	default:
		return o, fmt.Errorf("%s %q: use mark or register", name("nacos-mode"), o.Mode)
	}
	if o.Password != "" && o.Username == "" {
		return o, fmt.Errorf("a Nacos password was given without %s", name("nacos-username"))
	}
	return o, nil
}

// servers parses o's addresses, which Resolve checked.
func (o Options) servers() ([]server, error) {
	servers := make([]server, 0, len(o.Addrs))
	for _, a := range o.Addrs {
		s, err := parseServer(a)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// Probe asks every server for its service list, below the context path
// the backend itself uses, and reports each answer (see failover.Probe).
// It changes nothing.
func (o Options) Probe(ctx context.Context) []registry.ProbeResult {
	o = o.withDefaults()
	hc := failover.NewHTTPClient("", "")
	defer hc.CloseIdleConnections()
	var out []registry.ProbeResult
	for _, a := range o.Addrs {
		u, err := ProbeURL(a, o.Namespace)
		if err != nil {
			out = append(out, registry.ProbeResult{Server: a, Err: err})
			continue
		}
		out = append(out, registry.ProbeResult{Server: u, Err: failover.Probe(ctx, hc, u)})
	}
	return out
}
