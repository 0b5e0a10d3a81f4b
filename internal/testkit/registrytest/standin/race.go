//go:build race

package standin

// raceEnabled: nacos-sdk-go v2.3.5 sorts its cached instance slice in place
// on every push while SelectInstances reads it (service_info_holder.go), a
// data race inside the SDK that -race reports against the consumer; under
// -race the consumer applies the same filter to its own copy of the pushed
// list instead.
const raceEnabled = true
