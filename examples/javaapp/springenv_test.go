package javaapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

// The registration properties gracefulinit sets for the app through Spring
// Boot's relaxed binding reach the registries as Spring Cloud sends them:
// the Nacos weight and enabled, the Eureka initial status, with Spring's
// precedence (flag > SPRING_*/EUREKA_* > APP_* > default), its legacy
// variable names and lenient values, on the first registration and on the
// one a heartbeat makes after the server forgot the instance.
func TestSpringEnvRegistration(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	tests := []struct {
		name string
		env  []string
		args []string
		// Nacos: the weight registered (Polaris lists weight 0 instances
		// with healthyOnly=false), and hidden: registered disabled, which
		// the list leaves out, so only the log shows its weight.
		weight float64
		hidden bool
		status string // Eureka
		forget bool   // delete the instances behind the app's back: it registers them again alike
	}{
		{name: "defaults", weight: 1, status: "UP"},
		{
			name: "Spring variables beat APP",
			env: []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0", "APP_WEIGHT=5",
				"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE", "APP_EUREKA_INITIAL_STATUS=DOWN"},
			weight: 0, status: "OUT_OF_SERVICE", forget: true,
		},
		{
			name:   "disabled, legacy names, lenient values",
			env:    []string{"SPRING_CLOUD_NACOS_DISCOVERY_INSTANCE_ENABLED=off", "EUREKA_INSTANCE_INITIAL_STATUS=out-of-service"},
			weight: 1, hidden: true, status: "OUT_OF_SERVICE", forget: true,
		},
		{
			name: "canonical names beat legacy",
			env: []string{"SPRING_CLOUD_NACOS_DISCOVERY_INSTANCEENABLED=true", "SPRING_CLOUD_NACOS_DISCOVERY_INSTANCE_ENABLED=false",
				"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0",
				"EUREKA_INSTANCE_INITIALSTATUS=DOWN", "EUREKA_INSTANCE_INITIAL_STATUS=UP"},
			weight: 0, status: "DOWN",
		},
		{
			name: "flags beat variables",
			env: []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0", "SPRING_CLOUD_NACOS_DISCOVERY_INSTANCEENABLED=false",
				"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE"},
			args:   []string{"--weight", "3", "--instance-enabled", "true", "--eureka-initial-status=up"},
			weight: 3, status: "UP",
		},
		{
			name:   "APP variables alone",
			env:    []string{"APP_WEIGHT=2", "APP_INSTANCE_ENABLED=FALSE", "APP_EUREKA_INITIAL_STATUS=DOWN"},
			weight: 2, hidden: true, status: "DOWN",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			svc := fmt.Sprintf("springenv-%d", i)
			grouped := "DEFAULT_GROUP@@" + svc
			app, id := strings.ToUpper(fmt.Sprintf("springenv-eureka-%d", i)), fmt.Sprintf("springenv-%d-id", i)
			args := append([]string{"--bind", "127.0.0.1", "--port", "0", "--service", svc, "--nacos", s.NacosAddr,
				"--nacos-beat", "1", "--eureka", s.EurekaURL, "--app", app, "--instance-id", id, "--eureka-heartbeat", "1"},
				tt.args...)
			p, port := startApp(ctx, t, tt.env, args...)

			nacosLine := fmt.Sprintf("nacos registered %s 127.0.0.1:%d namespace=public weight=%s enabled=%t",
				grouped, port, strconv.FormatFloat(tt.weight, 'f', 1, 64), !tt.hidden)
			eurekaLine := fmt.Sprintf("eureka registered %s/%s status=%s", app, id, tt.status)
			// check waits until both registries show the registration the case wants.
			check := func(what string) {
				t.Helper()
				vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
				defer vcancel()
				if err := eventually(vctx, what+": eureka status "+tt.status, func() error {
					st, err := eurekaStatus(ctx, s, app, id)
					if err == nil && st != tt.status {
						err = fmt.Errorf("status %q", st)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				// Polaris keeps one instance for both protocols: its Eureka
				// view shows the Nacos registration too, isolated
				// (OUT_OF_SERVICE) when registered disabled. That is how a
				// disabled instance, which the Nacos list hides, is seen.
				wantIsolated := map[bool]string{false: "UP", true: "OUT_OF_SERVICE"}[tt.hidden]
				if err := eventually(vctx, what+": the nacos instance in Polaris' Eureka view", func() error {
					st, err := polarisEurekaView(ctx, s, svc, port)
					if err == nil && st != wantIsolated {
						err = fmt.Errorf("status %q, want %s", st, wantIsolated)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if tt.hidden {
					if h, err := nacosFind(ctx, s, grouped, port); err != nil || h != nil {
						t.Fatalf("%s: disabled instance in the list: %+v %v", what, h, err)
					}
					return
				}
				if err := eventually(vctx, what+": nacos listing", func() error {
					h, err := nacosFind(ctx, s, grouped, port)
					switch {
					case err != nil:
						return err
					case h == nil:
						return errors.New("not listed")
					case h.Weight != tt.weight || !h.Enabled:
						return fmt.Errorf("listed as %+v", *h)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			waitLog(ctx, t, p, nacosLine)
			waitLog(ctx, t, p, eurekaLine)
			check("registration")
			if tt.forget {
				n0, m0 := countLines(p, "nacos registered"), countLines(p, "eureka registered")
				q := url.Values{"serviceName": {grouped}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(port)}, "ephemeral": {"true"}}
				if err := do(ctx, http.MethodDelete, s.NacosAddr+"/nacos/v1/ns/instance?"+q.Encode()); err != nil {
					t.Fatal(err)
				}
				if err := do(ctx, http.MethodDelete, s.EurekaURL+"/apps/"+app+"/"+id); err != nil {
					t.Fatal(err)
				}
				rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
				defer rcancel()
				if err := eventually(rctx, "registered again", func() error {
					if n, m := countLines(p, "nacos registered"), countLines(p, "eureka registered"); n <= n0 || m <= m0 {
						return fmt.Errorf("%d nacos and %d eureka registration lines, %d and %d before the removal", n, m, n0, m0)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				requireLogOrder(t, p, "nacos heartbeat: instance not found", nacosLine)
				requireLogOrder(t, p, "eureka heartbeat: instance not found", eurekaLine)
				check("registered again")
			}
			// Every registration line states what it registered with.
			if got, all := countLines(p, nacosLine), countLines(p, "nacos registered"); got != all {
				t.Fatalf("%d of %d nacos registration lines read %q:\n%s", got, all, nacosLine, strings.Join(p.Lines(), "\n"))
			}
			if got, all := countLines(p, eurekaLine), countLines(p, "eureka registered"); got != all {
				t.Fatalf("%d of %d eureka registration lines read %q:\n%s", got, all, eurekaLine, strings.Join(p.Lines(), "\n"))
			}

			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := exitCode(ctx, t, p); code != 143 {
				t.Fatalf("exit code %d, want 143", code)
			}
			requireLogOrder(t, p, "shutdown requested", "deregistered", "stopped")
		})
	}
}

func countLines(p *javatest.Proc, substr string) int {
	n := 0
	for _, l := range p.Lines() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// A bad registration property stops the app at once (as Spring Boot fails
// to bind it), exit 2, one line naming the variable or flag that set it.
func TestSpringEnvBadValuesExit2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown Eureka status", []string{"EUREKA_INSTANCE_INITIALSTATUS=SLEEPING"}, nil,
			"EUREKA_INSTANCE_INITIALSTATUS: want one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN, got SLEEPING"},
		{"unknown Eureka status, legacy name", []string{"EUREKA_INSTANCE_INITIAL_STATUS=0"}, nil,
			"EUREKA_INSTANCE_INITIAL_STATUS: want one of"},
		{"bad status beats a good APP one", []string{"EUREKA_INSTANCE_INITIALSTATUS=UPP", "APP_EUREKA_INITIAL_STATUS=UP"}, nil,
			"EUREKA_INSTANCE_INITIALSTATUS: want one of"},
		{"status flag", nil, []string{"--eureka-initial-status", "out of order"}, "--eureka-initial-status: want one of"},
		{"weight above Nacos' range", []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=10001"}, nil,
			"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT: want a Nacos weight from 0 to 10000, got 10001"},
		{"negative weight", []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=-1"}, nil, "SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT: want a Nacos weight"},
		{"NaN weight", []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=NaN"}, nil, "SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT: want a Nacos weight"},
		{"weight flag", nil, []string{"--weight", "Infinity"}, "--weight: want a Nacos weight"},
		{"APP weight", []string{"APP_WEIGHT=heavy"}, nil, "APP_WEIGHT: want a Nacos weight"},
		{"not a boolean", []string{"SPRING_CLOUD_NACOS_DISCOVERY_INSTANCEENABLED=maybe"}, nil,
			"SPRING_CLOUD_NACOS_DISCOVERY_INSTANCEENABLED: want true or false, got maybe"},
		{"not a boolean, legacy name", []string{"SPRING_CLOUD_NACOS_DISCOVERY_INSTANCE_ENABLED=2"}, nil,
			"SPRING_CLOUD_NACOS_DISCOVERY_INSTANCE_ENABLED: want true or false"},
		{"boolean flag", nil, []string{"--instance-enabled=enabled"}, "--instance-enabled: want true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd, err := javatest.Command(ctx, javatest.ExampleAppJar(t), append([]string{"--bind", "127.0.0.1", "--port", "0"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			cmd.Env = append(cmd.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("exit %v, output %q; want exit 2 and one line containing %q", err, out, tt.want)
			}
		})
	}
}

// polarisEurekaView returns the status Polaris' Eureka API shows for the
// instance registered through its Nacos API as service svc on port ("" when
// there is none).
func polarisEurekaView(ctx context.Context, s *registrytest.Server, svc string, port int) (string, error) {
	r, err := get(ctx, http.DefaultClient, s.EurekaURL+"/apps/"+strings.ToUpper(svc))
	if err != nil {
		return "", err
	}
	if r.code == 404 {
		return "", nil
	}
	if r.code != 200 {
		return "", fmt.Errorf("GET app: %d %s", r.code, r.body)
	}
	var v struct {
		Application struct {
			Instance []struct {
				IPAddr string `json:"ipAddr"`
				Port   struct {
					Port int `json:"$"`
				} `json:"port"`
				Status string `json:"status"`
			} `json:"instance"`
		} `json:"application"`
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		return "", err
	}
	for _, in := range v.Application.Instance {
		if in.IPAddr == "127.0.0.1" && in.Port.Port == port {
			return in.Status, nil
		}
	}
	return "", nil
}
