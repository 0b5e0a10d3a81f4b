package nacos

// The pipe protocol between PID 1 and gracefulinit-nacos, the helper that
// runs nacos-sdk-go for register mode. JSON, one object per line.
//
// PID 1 writes to the helper's stdin:
//
//	line 1:  HelperConfig, everything the SDK needs (the password travels
//	         here, never in argv or the environment)
//	then:    HelperRequest {"id":N,"op":"online"|"offline"|"close","timeout_ms":T}
//	EOF:     PID 1 is done or gone: the helper deregisters, closes the SDK
//	         client and exits 0 (bounded by the registry timeout)
//
// The helper writes to its stdout:
//
//	HelperReply {"reply":N,"error":"..."}: the answer to request N, an empty
//	            error meaning success; requests may be answered out of order
//	otherwise:  one of its log records as slog's JSON handler writes it
//	            ("level", "msg", attributes), which PID 1 logs as its own
//
// Its stderr carries only what crashes it (a Go panic, the SDK's
// log.Fatalf); PID 1 keeps the last lines to say why it died.

// HelperName is the helper's file name, looked for next to gracefulinit.
const HelperName = "gracefulinit-nacos"

// HelperConfig configures the helper's SDK client and the instance it registers.
type HelperConfig struct {
	Servers   []HelperServer    `json:"servers"`
	Namespace string            `json:"namespace"`
	Group     string            `json:"group"`
	Service   string            `json:"service"`
	Cluster   string            `json:"cluster"`
	IP        string            `json:"ip"`
	Port      int               `json:"port"`
	Weight    float64           `json:"weight"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Username  string            `json:"username,omitempty"`
	Password  string            `json:"password,omitempty"` // secret: never log
	CacheDir  string            `json:"cache_dir"`
	TimeoutMs int64             `json:"timeout_ms"` // the SDK's request timeout
	Debug     bool              `json:"debug"`      // log at debug level
}

// HelperServer is one Nacos server as the SDK addresses it.
type HelperServer struct {
	Scheme      string `json:"scheme"`
	Host        string `json:"host"`
	Port        uint64 `json:"port"`
	ContextPath string `json:"context_path"`
}

// HelperRequest asks the helper for one registry step.
type HelperRequest struct {
	ID        uint64 `json:"id"`
	Op        string `json:"op"`
	TimeoutMs int64  `json:"timeout_ms,omitempty"` // 0: no bound but the helper's own
}

// HelperReply answers the request with the same id.
type HelperReply struct {
	Reply uint64 `json:"reply"`
	Error string `json:"error,omitempty"`
}

// InstanceString names the instance in logs and errors, as mark mode does.
func (c *HelperConfig) InstanceString() string {
	return instanceKey{namespace: c.Namespace, group: c.Group, service: c.Service, cluster: c.Cluster, ip: c.IP, port: c.Port}.String()
}
