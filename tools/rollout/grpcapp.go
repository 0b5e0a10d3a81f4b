package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// nacosGRPC is the registry kind of apps that register over gRPC with
// nacos-sdk-go and no cluster name, as a Go service or any client that
// leaves it empty does: Polaris keeps the cluster empty (real Nacos stores
// DEFAULT). The pod's JVM does not register itself; grpcRegistration does it
// for the app, for as long as the app would: with the start side, at once
// and at the weight the JVM's environment gives (toldWeight), as a Spring
// Cloud Alibaba app on a 2.x client does.
const nacosGRPC = "nacos-grpc"

// grpcRegistration registers the pod's instance over gRPC at weight, and
// deregisters it when the app begins its shutdown (the JVM logs "shutdown
// requested" on SIGTERM), as a framework does on context close. It ends
// when the pod exits; the SDK client is closed then.
func grpcRegistration(ctx context.Context, p *Pod, logPath, service, dir string, nacosPort, port int, weight float64) error {
	cc := constant.NewClientConfig(
		constant.WithTimeoutMs(3000),
		constant.WithNotLoadCacheAtStart(true),
		constant.WithLogDir(dir),
		constant.WithCacheDir(dir),
		constant.WithLogLevel("error"),
	)
	sc := []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", uint64(nacosPort))}
	c, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: cc, ServerConfigs: sc})
	if err != nil {
		return fmt.Errorf("nacos-sdk-go client for %s: %w", p.Name, err)
	}
	ok, err := c.RegisterInstance(vo.RegisterInstanceParam{
		Ip: p.IP, Port: uint64(port), Weight: weight, Enable: true, Healthy: true, Ephemeral: true,
		ServiceName: service, GroupName: "DEFAULT_GROUP", // no ClusterName: the SDK's default
		Metadata: map[string]string{"registered-by": "nacos-sdk-go"},
	})
	if err == nil && !ok {
		err = fmt.Errorf("server refused the registration")
	}
	if err != nil {
		c.CloseClient()
		return fmt.Errorf("register %s over gRPC: %w", p.Name, err)
	}
	go func() {
		defer c.CloseClient()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.done:
				return
			case <-tick.C:
			}
			if b, err := os.ReadFile(logPath); err == nil && bytes.Contains(b, []byte("shutdown requested")) {
				_, _ = c.DeregisterInstance(vo.DeregisterInstanceParam{Ip: p.IP, Port: uint64(port),
					ServiceName: service, GroupName: "DEFAULT_GROUP", Ephemeral: true})
				<-p.done
				return
			}
		}
	}()
	return nil
}

// grpcDir is the SDK's cache and log directory of one pod's registration.
func grpcDir(logDir, pod string) string { return filepath.Join(logDir, "sdk-"+pod) }

// envWeight is the Spring Cloud Alibaba variable of the registration
// weight, which gracefulinit sets to 0 for a told app.
const envWeight = "SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT"

// toldWeight is the weight a Spring Cloud Alibaba app on a 2.x client
// (which registers over gRPC) would register with: its environment's
// envWeight, else 1. The environment is the one the pod's init gave the
// app's process (comm), found among the descendants of root once it has
// exec'd; ctx bounds the wait.
func toldWeight(ctx context.Context, root int, comm string) (float64, error) {
	for {
		if pid := descendant(root, comm); pid > 0 {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err != nil {
				return 0, fmt.Errorf("environment of %s (pid %d): %w", comm, pid, err)
			}
			v, ok := environValue(b, envWeight)
			if !ok {
				return 1, nil
			}
			w, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(w) || math.IsInf(w, 0) || w < 0 || w > 10000 {
				return 0, fmt.Errorf("%s=%q in the environment of %s: want a weight from 0 to 10000", envWeight, v, comm)
			}
			return w, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no %s process under pid %d: %w", comm, root, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// descendant is the first process named comm below root (0: none yet).
func descendant(root int, comm string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	children := map[int][]int{}
	names := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		names[pid] = string(b[open+1 : end])
	}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if names[c] == comm {
				return c
			}
			queue = append(queue, c)
		}
	}
	return 0
}

// environValue is key's value in a /proc/PID/environ (NUL-separated).
func environValue(environ []byte, key string) (string, bool) {
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if k, v, ok := bytes.Cut(kv, []byte("=")); ok && string(k) == key {
			return string(v), true
		}
	}
	return "", false
}
