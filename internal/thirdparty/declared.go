package thirdparty

// declared names the linked modules whose module zip carries no license
// file, with the license their own repository declares and where it says
// so. Collect uses an entry only for a module that ships no license file,
// and its test fails on an entry no longer needed, so this stays as short
// as the dependencies allow; any other module without a license file still
// fails the build of the license file.
var declared = map[string]declaration{
	// Pulled in by nacos-sdk-go's KMS config encryption.
	"github.com/alibabacloud-go/alibabacloud-gateway-pop": alibabaApache("its sibling alibabacloud-gateway-spi's LICENSE (the module carries no README)"),
	"github.com/alibabacloud-go/darabonba-array":          alibabaApache("the repository's README, section License"),
	"github.com/alibabacloud-go/darabonba-encode-util":    alibabaApache("the repository's README, section License"),
	"github.com/alibabacloud-go/darabonba-map":            alibabaApache("the repository's README, section License"),
	"github.com/alibabacloud-go/darabonba-signature-util": alibabaApache("the repository's README, section License"),
	"github.com/alibabacloud-go/darabonba-string":         alibabaApache("the module's README.md, section License"),
	"github.com/alibabacloud-go/endpoint-util":            alibabaApache("the module's README.md, section License"),
}

// declaration is a license a module's repository states without shipping
// the license file in the module.
type declaration struct {
	License   string // SPDX identifier; only Apache-2.0 so far, whose text gracefulinit ships
	Copyright string
	Source    string // where the declaration is read
}

func alibabaApache(source string) declaration {
	return declaration{License: "Apache-2.0", Copyright: "Copyright (c) 2009-present, Alibaba Cloud All rights reserved.", Source: source}
}
