module github.com/onecard-hub/onecard

go 1.26.0

require (
	github.com/creack/pty v1.1.24
	github.com/ebfe/scard v0.0.0-20241214075232-7af069cabc25
	github.com/emmansun/gmsm v0.34.1
	go.bug.st/serial v1.8.0
	golang.org/x/crypto v0.41.0
	golang.org/x/sys v0.43.0
	golang.org/x/text v0.44.0
	gopkg.in/yaml.v3 v3.0.1
)

require go.etcd.io/bbolt v1.4.3
