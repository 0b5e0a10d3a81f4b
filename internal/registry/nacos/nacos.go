// Package nacos takes the app's instance in and out of Nacos.
//
// Two modes, chosen by --nacos-mode:
//
//   - mark (default): the app registers itself (Spring Cloud Alibaba or any
//     Nacos client); gracefulinit only changes that instance's weight or
//     enabled flag through the HTTP ops API, using net/http alone. It never
//     publishes an instance of its own: nacos-sdk-go's UpdateInstance is a
//     re-register over the supervisor's connection and would create a second
//     copy instead of changing the app's (nacos-sdk-go#866).
//   - register: the app does not register itself; gracefulinit registers an
//     ephemeral instance with nacos-sdk-go and deregisters it at drain start.
//     The SDK runs in the helper process gracefulinit-nacos (see helper.go,
//     helperproto.go and package nacossdk), never in PID 1: this package
//     does not link it.
package nacos

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
)

// New builds the Nacos registry o describes (see Options), in o.Mode. It
// does no network I/O.
func New(o Options, log *slog.Logger) (registry.Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("registry", "nacos")
	o, err := o.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("nacos: %w", err)
	}
	servers, err := o.servers()
	if err != nil {
		return nil, err
	}
	if o.Mode == "register" {
		return newRegister(o, servers, log)
	}
	return newMark(o, servers, log), nil
}

// server is one Nacos address split the way both the HTTP client and the SDK
// need it.
type server struct {
	base        *url.URL // scheme://[userinfo@]host:port, no path
	contextPath string   // "/nacos" unless the address named another path
	host        string
	port        uint64
	display     string // for logs and errors: userinfo redacted
}

// parseServer accepts "host:port", "http://host:port" and
// "http://host:port/ctx"; a path in the address is Nacos's context path
// (server.servlet.contextPath), "/nacos" when absent.
func parseServer(raw string) (server, error) {
	a := raw
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return server{}, fmt.Errorf("nacos: address %q: want a URL like http://nacos:8848", redact.URL(a))
	}
	s := server{contextPath: strings.TrimRight(u.Path, "/"), host: u.Hostname()}
	if s.contextPath == "" {
		s.contextPath = "/nacos"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return server{}, fmt.Errorf("nacos: address %q: bad port", redact.URL(a))
		}
		s.port = n
	} else if u.Scheme == "https" {
		s.port = 443
	} else {
		s.port = 8848
	}
	base := *u
	base.Path, base.RawPath, base.RawQuery, base.Fragment = "", "", "", ""
	base.Host = net.JoinHostPort(s.host, strconv.FormatUint(s.port, 10))
	s.base = &base
	disp := base
	disp.User = nil
	s.display = disp.String()
	return s, nil
}

// ProbeURL is the address --check asks to see that the Nacos server at addr
// answers: its service list, below the context path the address names
// ("/nacos" when it names none), as every call of this package is.
func ProbeURL(addr, namespace string) (string, error) {
	s, err := parseServer(addr)
	if err != nil {
		return "", err
	}
	u := *s.base
	u.Path = s.contextPath + "/v1/ns/service/list"
	u.RawQuery = url.Values{"pageNo": {"1"}, "pageSize": {"1"}, "namespaceId": {namespace}}.Encode()
	return u.String(), nil
}

// instanceKey is what every Nacos API needs to name the app's instance.
type instanceKey struct {
	namespace string
	group     string
	service   string // without group
	cluster   string
	ip        string
	port      int
}

// keyFrom names o's instance; o has its defaults.
func keyFrom(o Options) instanceKey {
	return instanceKey{namespace: o.Namespace, group: o.Group, service: o.Service, cluster: o.Cluster, ip: o.IP, port: o.Port}
}

// defaultCluster reports whether no particular cluster was configured: an
// empty cluster and DEFAULT are the same one (real Nacos stores an empty
// cluster name as DEFAULT, Polaris keeps it empty).
func (k instanceKey) defaultCluster() bool { return isDefaultCluster(k.cluster) }

func isDefaultCluster(c string) bool { return c == "" || c == "DEFAULT" }

// groupedService is GROUP@@service: every server version (and Polaris,
// which ignores groupName) accepts it as serviceName.
func (k instanceKey) groupedService() string { return k.group + "@@" + k.service }

func (k instanceKey) String() string {
	return fmt.Sprintf("%s:%d of %s (namespace %s, cluster %s)", k.ip, k.port, k.groupedService(), k.namespace, k.cluster)
}
