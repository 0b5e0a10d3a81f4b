package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// nacosGRPC is the registry kind of apps that register over gRPC with
// nacos-sdk-go and no cluster name, as a Go service or any client that
// leaves it empty does: Polaris keeps the cluster empty (real Nacos stores
// DEFAULT). The pod's JVM does not register itself; grpcRegistration does it
// for the app, for as long as the app would.
const nacosGRPC = "nacos-grpc"

// grpcRegistration registers the pod's instance over gRPC once the app
// serves, and deregisters it when the app begins its shutdown (the JVM logs
// "shutdown requested" on SIGTERM), as a framework does on context close.
// It ends when the pod exits; the SDK client is closed then.
func grpcRegistration(ctx context.Context, p *Pod, logPath, service, dir string, nacosPort, port int) error {
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
		Ip: p.IP, Port: uint64(port), Weight: 1, Enable: true, Healthy: true, Ephemeral: true,
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
