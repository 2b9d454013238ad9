package cli

import (
	"runtime"
	"testing"
)

func TestVersion(t *testing.T) {
	run(t, "", "version").expect(t, exitOK, "cairn dev\n"+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n")
	r := run(t, "", "version", "-o", "json")
	r.expect(t, exitOK, "*")
	var v versionInfo
	r.decode(t, &v)
	if v.Version != Version || v.Go != runtime.Version() {
		t.Errorf("JSON output %+v", v)
	}
}
