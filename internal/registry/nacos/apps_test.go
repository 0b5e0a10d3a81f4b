package nacos

import (
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// markConfig is gracefulinit's mark mode for ip:port in service on s. The
// apps and the consumer around the code under test are standin's: real
// nacos-sdk-go clients and a real HTTP v1 client.
func markConfig(s *registrytest.Server, service, ip string, port int) *Options {
	return &Options{
		Timeout:   3 * time.Second,
		Service:   service,
		IP:        ip,
		Port:      port,
		Addrs:     []string{s.NacosAddr},
		Namespace: "public",
		Group:     standin.NacosGroup,
		Cluster:   "DEFAULT",
		Offline:   "weight",
		Mode:      "mark",
		Weight:    1,
	}
}
