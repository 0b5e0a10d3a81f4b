// Package kubernetes_test keeps the example manifests honest: each one is
// run through gracefulinit's own flag parser with the environment the kubelet
// would give it, and its timeline must agree with the pod spec and with the
// arithmetic written in its comments.
package kubernetes_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gracefulinit/gracefulinit/internal/config"
)

// The subset of the Kubernetes API the checks read. Unknown fields are
// ignored on purpose: the manifests are full Deployments.
type object struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64      `yaml:"terminationGracePeriodSeconds"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

// probeSpec is the part of a probe the test reads.
type probeSpec struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a container port's name
	} `yaml:"httpGet"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type container struct {
	Name    string   `yaml:"name"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports          []containerPort `yaml:"ports"`
	ReadinessProbe *probeSpec      `yaml:"readinessProbe"`
	LivenessProbe  *yaml.Node      `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *yaml.Node `yaml:"preStop"`
	} `yaml:"lifecycle"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// Values the kubelet would fill in from the downward API and secrets.
const (
	fakePodIP   = "10.244.1.17"
	fakePodName = "svc-7d4b9c6f5-x2kqp"
	fakeHostIP  = "10.0.7.3"
	fakeSecret  = "not-a-real-secret"
)

func TestManifests(t *testing.T) {
	type testCase struct {
		file       string
		registries []string // what gracefulinit must be told to update
	}
	tests := []testCase{
		{"nacos.yaml", []string{"nacos"}},
		{"eureka.yaml", []string{"eureka"}},
		{"plain-service.yaml", nil},
		{"prometheus.yaml", []string{"nacos"}},
	}
	all, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if !slices.ContainsFunc(tests, func(tc testCase) bool { return tc.file == f }) {
			t.Errorf("%s has no test case: add it to the table", f)
		}
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			deployments := decodeDeployments(t, raw)
			if len(deployments) != 1 {
				t.Fatalf("want exactly one Deployment, found %d", len(deployments))
			}
			cfg := checkPod(t, deployments[0], tc.registries, commentTimeline(t, raw))
			checkComments(t, cfg, comments(raw))
		})
	}
}

func decodeDeployments(t *testing.T, raw []byte) []podSpec {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var pods []podSpec
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return pods
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if o.Kind == "Deployment" {
			pods = append(pods, o.Spec.Template.Spec)
		}
	}
}

func checkPod(t *testing.T, pod podSpec, registries []string, comment map[string]time.Duration) *config.Config {
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set: it must be written out, equal to --grace-period")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second

	var supervised []container
	for _, c := range pod.Containers {
		if len(c.Command) > 0 && c.Command[0] == "/gracefulinit" {
			supervised = append(supervised, c)
		}
	}
	if len(supervised) != 1 {
		t.Fatalf("want one container with command [/gracefulinit], found %d", len(supervised))
	}
	c := supervised[0]

	env := kubeletEnv(t, c)
	args := append(slices.Clone(c.Command[1:]), c.Args...)
	for i, a := range args {
		args[i] = expand(a, env)
	}
	args = relocateMounts(t, c, args)

	cfg, err := config.Parse(args, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, io.Discard)
	if err != nil {
		t.Fatalf("gracefulinit rejects the container's arguments: %v\nargs: %q", err, args)
	}

	if cfg.GracePeriod != grace {
		t.Errorf("--grace-period %s != terminationGracePeriodSeconds %s", cfg.GracePeriod, grace)
	}
	budget := cfg.DrainBudget()
	if budget < 0 {
		t.Errorf("drain budget %s - %s - %s = %s is negative", cfg.GracePeriod, cfg.KillMargin, cfg.StopTimeout, budget)
	}
	if cfg.Drain > budget {
		t.Errorf("drain %s exceeds the budget %s", cfg.Drain, budget)
	}
	want := map[string]time.Duration{
		"terminationGracePeriodSeconds": grace,
		"kill-margin":                   cfg.KillMargin,
		"stop-timeout":                  cfg.StopTimeout,
		"drain budget":                  budget,
	}
	for k, v := range want {
		got, ok := comment[k]
		if !ok {
			t.Errorf("the header comment's timeline has no %q line", k)
			continue
		}
		if got != v {
			t.Errorf("the header comment says %s is %s, the manifest makes it %s", k, got, v)
		}
	}

	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		t.Error("container has a preStop hook: gracefulinit does the drain, and preStop time counts against the grace period")
	}
	if c.ReadinessProbe == nil {
		t.Error("container has no readinessProbe")
	}
	// With a registry, readiness must follow it: gracefulinit's /ready is
	// 200 only once the instance is back in the registry, 503 from SIGTERM.
	if len(registries) > 0 {
		checkHealthProbe(t, c, cfg.HealthAddr)
	}
	if !podIPFromDownwardAPI(c) {
		t.Error("POD_IP must come from the downward API: valueFrom.fieldRef.fieldPath: status.podIP")
	}
	// Kubelet probes come from the node's address every few seconds and
	// never stop: a drain that waits for every caller must leave them out,
	// or every shutdown runs to its ceiling.
	if cfg.DrainQuiet > 0 && (c.ReadinessProbe != nil || c.LivenessProbe != nil) &&
		!slices.ContainsFunc(cfg.DrainIgnore, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(fakeHostIP)) }) {
		t.Error("the drain waits for the kubelet's probes: set HOST_IP from the downward API (fieldRef status.hostIP), or --drain-ignore the node's address")
	}
	if len(cfg.Command) == 0 {
		t.Fatal("no app command after --")
	}
	if filepath.Base(cfg.Command[0]) == "java" && !slices.Contains(cfg.RemapExit, 143) {
		t.Error("a JVM exits 143 after a clean SIGTERM shutdown: add --remap-exit=143")
	}
	if len(cfg.Ports) == 0 || !slices.ContainsFunc(c.Ports, func(p containerPort) bool {
		return p.ContainerPort == cfg.Port()
	}) {
		t.Errorf("--port %v is not one of the container's ports", cfg.Ports)
	}

	if !slices.Equal(cfg.Registries, registries) {
		t.Errorf("registries %v, want %v", cfg.Registries, registries)
	}
	// gracefulinit and the app must name the same instance, or the
	// offline step changes nothing the consumers use.
	if slices.Contains(registries, "nacos") {
		if cfg.IP != fakePodIP {
			t.Errorf("gracefulinit's Nacos IP %q is not the pod IP", cfg.IP)
		}
		if got := env["SPRING_CLOUD_NACOS_DISCOVERY_IP"]; got != cfg.IP {
			t.Errorf("the app registers IP %q, gracefulinit marks %q", got, cfg.IP)
		}
		if got := env["SPRING_APPLICATION_NAME"]; got != cfg.Service {
			t.Errorf("the app registers service %q, gracefulinit marks %q", got, cfg.Service)
		}
		if cfg.Nacos.Password != fakeSecret {
			t.Error("the Nacos password does not come from the mounted secret")
		}
	}
	if slices.Contains(registries, "eureka") {
		if got := env["EUREKA_INSTANCE_INSTANCE_ID"]; got != cfg.Eureka.InstanceID {
			t.Errorf("the app registers instance id %q, gracefulinit marks %q", got, cfg.Eureka.InstanceID)
		}
		if !strings.Contains(cfg.Eureka.InstanceID, fakePodName) {
			t.Errorf("instance id %q does not contain the pod name: ids must be unique per pod", cfg.Eureka.InstanceID)
		}
		if got := strings.ToUpper(env["SPRING_APPLICATION_NAME"]); got != cfg.Eureka.App {
			t.Errorf("the app registers app %q, gracefulinit marks %q", got, cfg.Eureka.App)
		}
	}
	return cfg
}

// comments is every comment line of a manifest, without its "#", joined
// into one text so a phrase or a flag may run across lines.
func comments(raw []byte) string {
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "#") {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		}
	}
	return strings.Join(out, " ")
}

// flagMention is a flag with a value written in a comment, e.g.
// "--drain-quiet 3s" or "--drain-cache-max=40s".
var flagMention = regexp.MustCompile(`--([a-z][a-z0-9-]+)[ =]([0-9][0-9a-z.]*)`)

// staleClaims are descriptions of behaviour gracefulinit no longer has:
// a comment that says one of them has drifted from the code.
var staleClaims = []struct{ phrase, now string }{
	{"saw no new connection", "the drain waits for each caller (per-caller rule), not for one quiet window on the port"},
	{"no request byte", "the drain waits for each caller (per-caller rule), not for one quiet window on the port"},
	{"without a request", "the drain waits for each caller (per-caller rule), not for one quiet window on the port"},
	{"only changes that instance's weight", "the Nacos offline sets weight 0 and disables the instance (--nacos-offline both)"},
}

// checkComments keeps a manifest's comments true: every flag value they
// quote is the value gracefulinit resolves, and what they say the stop
// does (the offline, the drain's rule) is what this configuration does.
func checkComments(t *testing.T, cfg *config.Config, text string) {
	t.Helper()
	resolved := map[string]string{
		"grace-period": cfg.GracePeriod.String(), "kill-margin": cfg.KillMargin.String(),
		"stop-timeout": cfg.StopTimeout.String(), "drain": cfg.Drain.String(),
		"drain-quiet": cfg.DrainQuiet.String(), "drain-min": cfg.DrainMin.String(),
		"drain-cache-max": cfg.DrainCacheMax.String(), "dump-before": cfg.DumpBefore.String(),
	}
	for _, m := range flagMention.FindAllStringSubmatch(text, -1) {
		name, said := m[1], m[2]
		want, ok := resolved[name]
		if !ok {
			f := cfg.Flags().Lookup(name)
			if f == nil {
				t.Errorf("a comment names --%s, which gracefulinit does not have", name)
				continue
			}
			want = f.Value.String()
		}
		if d, err := time.ParseDuration(said); err == nil {
			if w, werr := time.ParseDuration(want); werr == nil && d == w {
				continue
			}
		}
		if said != want {
			t.Errorf("a comment says --%s %s; the manifest resolves it to %s", name, said, want)
		}
	}
	for _, c := range staleClaims {
		if strings.Contains(text, c.phrase) {
			t.Errorf("a comment says %q: no longer true, %s", c.phrase, c.now)
		}
	}
	switch {
	case cfg.Drain == 0:
	case cfg.DrainQuiet == 0:
		if !strings.Contains(text, "fixed drain") {
			t.Error("the drain is fixed (--drain-quiet 0): the comments must say \"fixed drain\"")
		}
	case cfg.DrainPerCaller:
		if !strings.Contains(text, "twice its longest gap") {
			t.Error("the drain waits for each caller: the comments must give the rule, max(--drain-quiet Q, twice its longest gap)")
		}
	}
	if slices.Contains(cfg.Registries, "nacos") {
		// What the stop does to the instance, by --nacos-offline.
		said := map[string]string{"both": "weight 0 and disabled", "weight": "weight 0", "disable": "disabled"}[cfg.Nacos.Offline]
		if said == "" || !strings.Contains(text, said) {
			t.Errorf("--nacos-offline %s: the comments must say the stop sets the instance %q", cfg.Nacos.Offline, said)
		}
		if cfg.Nacos.Offline == "both" && strings.Count(text, "weight 0") != strings.Count(text, "weight 0 and disabled") {
			t.Error("a comment says the stop sets weight 0 alone: it sets weight 0 and disables the instance")
		}
	}
	if slices.Contains(cfg.Registries, "eureka") && !strings.Contains(text, "OUT_OF_SERVICE") {
		t.Error("the comments must say the stop sets the Eureka status OUT_OF_SERVICE")
	}
}

// checkHealthProbe checks the readinessProbe asks gracefulinit's /ready on
// the --health-addr port.
func checkHealthProbe(t *testing.T, c container, healthAddr string) {
	t.Helper()
	if healthAddr == "" {
		t.Error("no --health-addr: the readinessProbe cannot follow the registry")
		return
	}
	_, port, err := net.SplitHostPort(healthAddr)
	if err != nil {
		t.Fatalf("--health-addr %q: %v", healthAddr, err)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		t.Error("the readinessProbe is not an httpGet")
		return
	}
	probe := c.ReadinessProbe
	if probe.HTTPGet.Path != "/ready" {
		t.Errorf("readinessProbe path %q, want gracefulinit's /ready", probe.HTTPGet.Path)
	}
	// The probe's port is a number or a container port's name.
	got := fmt.Sprint(probe.HTTPGet.Port)
	for _, p := range c.Ports {
		if p.Name == got {
			got = strconv.Itoa(p.ContainerPort)
		}
	}
	if got != port {
		t.Errorf("readinessProbe port %v is not --health-addr's %s (declare it among the container's ports)", probe.HTTPGet.Port, port)
	}
}

// kubeletEnv resolves the container's env the way the kubelet does: in
// order, $(VAR) referring to earlier entries, downward API and secrets
// replaced by fixed stand-ins.
func kubeletEnv(t *testing.T, c container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			switch p := e.ValueFrom.FieldRef.FieldPath; p {
			case "status.podIP":
				env[e.Name] = fakePodIP
			case "metadata.name":
				env[e.Name] = fakePodName
			case "status.hostIP":
				env[e.Name] = fakeHostIP
			default:
				t.Fatalf("env %s: fieldRef %q has no stand-in in this test", e.Name, p)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = fakeSecret
		default:
			t.Fatalf("env %s: unsupported valueFrom", e.Name)
		}
	}
	return env
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expand applies Kubernetes' $(VAR) substitution: defined variables are
// replaced, undefined references stay as written, $$ escapes a dollar.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// relocateMounts points file arguments under the container's volume mounts
// at a temp dir holding stand-in secret files, so that *-file flags parse.
func relocateMounts(t *testing.T, c container, args []string) []string {
	t.Helper()
	root := t.TempDir()
	out := slices.Clone(args)
	for _, m := range c.VolumeMounts {
		prefix := strings.TrimSuffix(m.MountPath, "/") + "/"
		for i, a := range out {
			name, val, ok := strings.Cut(a, "=")
			if !ok || !strings.HasPrefix(val, prefix) {
				continue
			}
			local := filepath.Join(root, filepath.FromSlash(val))
			if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(local, []byte(fakeSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out[i] = name + "=" + local
		}
	}
	return out
}

func podIPFromDownwardAPI(c container) bool {
	for _, e := range c.Env {
		if e.Name == "POD_IP" {
			return e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
		}
	}
	return false
}

// timelineLine matches the header comment's arithmetic, e.g.
// "#   - stop-timeout      14 s  Spring graceful shutdown".
var timelineLine = regexp.MustCompile(`^#\s+(?:[-=]\s+)?(terminationGracePeriodSeconds|kill-margin|stop-timeout|drain budget)\s+(\d+) s\b`)

func commentTimeline(t *testing.T, raw []byte) map[string]time.Duration {
	t.Helper()
	out := map[string]time.Duration{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := timelineLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatalf("comment line %q: %v", line, err)
		}
		out[m[1]] = time.Duration(n) * time.Second
	}
	return out
}
