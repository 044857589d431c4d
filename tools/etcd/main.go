// The etcd server the tests and `npm run demo` run: etcd's own main (etcdmain.Main), built from
// its Go module at the version pinned in go.mod, so CI runs the etcd that the Helm chart ships
// (3.5.17) instead of Debian's 3.4.23, which revokes live leases when a paused raft leader
// resumes (etcd-io/etcd#15247, fixed in 3.4.28 and 3.5.11). .ci/run builds it into GOBIN.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
