package registry

import (
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

// nacosInit are gracefulinit's flags for Nacos mark mode against s.
func nacosInit(s *registrytest.Server, service string, extra ...string) []string {
	return append([]string{"--registry", "nacos", "--nacos-addr", s.NacosAddr, "--service", service}, extra...)
}

// nacosApp are the example app's flags to register itself in Nacos over
// HTTP v1 with a heartbeat every second (Polaris drops an instance about
// 15 s after its last heartbeat).
func nacosApp(s *registrytest.Server) []string {
	return []string{"--nacos", s.NacosAddr, "--nacos-beat", "1"}
}
