package eureka

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

// Options describe the app's Eureka instance and how to reach the servers.
// A zero field means its default, as stated.
type Options struct {
	// URLs are the service URLs, e.g. http://eureka:8761/eureka. Userinfo
	// in them is used as credentials when Username/Password are empty, and
	// never sent or printed as part of a URL. Required.
	URLs    []string
	Service string // the app's service name; default lower-case App
	App     string // the Eureka app name, upper-cased; default Service
	// InstanceID is the instance's id; default Spring Cloud's
	// hostname:service:port (see Hostname).
	InstanceID string
	IP         string // the instance's IP; required in register mode
	Port       int    // the instance's port; required in register mode
	Mode       string // "mark" (default): the app registers itself; "register"
	Username   string
	Password   string // secret: never logged
	// Heartbeat is register mode's renewal interval; default 30s. The lease
	// is three of them, at least Eureka's 90s.
	Heartbeat        time.Duration
	DeregisterOnExit bool              // mark mode: deregister the instance once the app has exited
	Metadata         map[string]string // register mode: the instance's metadata
	Timeout          time.Duration     // bound of a call whose context has no deadline; default 5s
	// Hostname names this host for the default InstanceID; default
	// os.Hostname.
	Hostname func() (string, error)
}

// withDefaults fills every zero field that has a default. The default
// instance id stays empty when the host has no name.
func (o Options) withDefaults() Options {
	o.App = strings.ToUpper(strings.TrimSpace(o.App))
	if o.App == "" {
		o.App = strings.ToUpper(o.Service)
	}
	if o.Service == "" {
		o.Service = strings.ToLower(o.App)
	}
	if o.Mode == "" {
		o.Mode = DefaultMode
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Timeout <= 0 {
		o.Timeout = registry.DefaultTimeout
	}
	if o.InstanceID == "" && o.Service != "" {
		hostname := o.Hostname
		if hostname == nil {
			hostname = os.Hostname
		}
		if host, err := hostname(); err == nil && host != "" {
			// Spring Cloud's default: hostname:spring.application.name:port.
			o.InstanceID = host + ":" + o.Service + ":" + strconv.Itoa(o.Port)
		}
	}
	return o
}

// Resolve fills o's defaults, checks it and returns it with its service
// URLs normalised: credentials taken out of them (into Username and
// Password when those are empty), no query, no trailing slash. It is the
// one validation of the Eureka settings: gracefulinit's configuration
// calls it with the flags' names, New calls it again. name says how an
// error names a setting ("eureka-url" as --eureka-url, or the variable
// that set it); nil: as the flag.
func (o Options) Resolve(name func(flag string) string) (Options, error) {
	if name == nil {
		name = func(flag string) string { return "--" + flag }
	}
	o = o.withDefaults()
	if len(o.URLs) == 0 {
		return o, fmt.Errorf("--registry eureka needs %s, e.g. http://eureka:8761/eureka", name("eureka-url"))
	}
	urls := make([]string, len(o.URLs))
	for i, raw := range o.URLs {
		if strings.TrimSpace(raw) == "" {
			return o, fmt.Errorf("%s lists an empty URL: remove the extra comma", name("eureka-url"))
		}
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !validPort(u.Port()) {
			return o, fmt.Errorf("%s %q: want a URL like http://eureka:8761/eureka (ports run from 1 to 65535)", name("eureka-url"), redact.URL(raw))
		}
		// Credentials come out of the URL, which fargo or an error
		// message might otherwise print.
		if u.User != nil {
			if o.Username == "" {
				o.Username = u.User.Username()
			}
			if p, ok := u.User.Password(); ok && o.Password == "" {
				o.Password = p
			}
			u.User = nil
		}
		u.RawQuery, u.Fragment = "", ""
		urls[i] = trimBase(u.String())
	}
	o.URLs = urls
	if o.App == "" {
		return o, fmt.Errorf("--registry eureka needs %s or %s, the app's name", name("eureka-app"), name("service"))
	}
	if o.InstanceID == "" {
		return o, fmt.Errorf("this host has no name for the default instance id: set %s", name("eureka-instance-id"))
	}
	switch o.Mode {
	case "mark":
	case "register":
		if net.ParseIP(o.IP) == nil {
			return o, fmt.Errorf("register mode needs the instance's IP, got %q: set %s or POD_IP", o.IP, name("ip"))
		}
		if o.Port <= 0 || o.Port > 65535 {
			return o, fmt.Errorf("register mode needs the app's port: set %s", name("port"))
		}
	default:
		return o, fmt.Errorf("%s %q: use mark or register", name("eureka-mode"), o.Mode)
	}
	return o, nil
}

// validPort reports whether a URL's port is empty (the scheme's) or from 1
// to 65535; url.Parse accepts any digits.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// ResolvedInstanceID is the instance id the backend will use: InstanceID,
// or its default.
func (o Options) ResolvedInstanceID() string { return o.withDefaults().InstanceID }

// Probe asks every service URL for its applications, with the configured
// credentials, and reports each answer (see failover.Probe). It changes
// nothing.
func (o Options) Probe(ctx context.Context) []registry.ProbeResult {
	var out []registry.ProbeResult
	user, pass := o.Username, o.Password
	for _, raw := range o.URLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			out = append(out, registry.ProbeResult{Server: raw, Err: fmt.Errorf("want a URL like http://eureka:8761/eureka")})
			continue
		}
		if u.User != nil && user == "" {
			user = u.User.Username()
			pass, _ = u.User.Password()
		}
		u.User = nil
		target := trimBase(u.String()) + "/apps"
		hc := failover.NewHTTPClient(user, pass)
		out = append(out, registry.ProbeResult{Server: target, Err: redact.Err(failover.Probe(ctx, hc, target), pass)})
		hc.CloseIdleConnections()
	}
	return out
}
