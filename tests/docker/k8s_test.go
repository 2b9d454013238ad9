package docker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestKubernetesManifests checks deploy/k8s/cairn.yaml without a
// cluster: the objects a StatefulSet deployment needs are there, the pods'
// flags are ones `cairn server` accepts, --initial-cluster names exactly
// the StatefulSet's pods through the headless Service, probes use
// /readyz and /healthz, and the PodDisruptionBudget keeps a quorum.
func TestKubernetesManifests(t *testing.T) {
	data, err := os.ReadFile("../../deploy/k8s/cairn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		kind, _ := o["kind"].(string)
		name, _ := get(o, "metadata", "name").(string)
		objs[kind+"/"+name] = o
	}
	for _, k := range []string{"Service/cairn-peer", "Service/cairn", "StatefulSet/cairn", "PodDisruptionBudget/cairn"} {
		if objs[k] == nil {
			t.Fatalf("deploy/k8s/cairn.yaml has no %s", k)
		}
	}
	if ip := get(objs["Service/cairn-peer"], "spec", "clusterIP"); ip != "None" {
		t.Errorf("cairn-peer is not headless: clusterIP %v", ip)
	}
	sts := objs["StatefulSet/cairn"]
	replicas, _ := get(sts, "spec", "replicas").(int)
	if replicas != 3 || get(sts, "spec", "serviceName") != "cairn-peer" {
		t.Errorf("StatefulSet: replicas %v, serviceName %v", replicas, get(sts, "spec", "serviceName"))
	}
	if mu := get(objs["PodDisruptionBudget/cairn"], "spec", "maxUnavailable"); mu != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1 (a quorum of 3 survives)", mu)
	}
	c := get(sts, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	if p := get(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness probe path %v", p)
	}
	if p := get(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("liveness probe path %v", p)
	}
	var args []string
	for _, a := range c["args"].([]any) {
		// Kubernetes expands $(VAR) from the container's env.
		s := strings.NewReplacer("$(POD_NAME)", "cairn-1", "$(POD_NAMESPACE)", "ns").Replace(a.(string))
		args = append(args, s)
	}
	var members []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--initial-cluster="); ok {
			for _, m := range strings.Split(v, ",") {
				members = append(members, m)
			}
		}
	}
	for i := range replicas {
		want := fmt.Sprintf("cairn-%d=cairn-%d.cairn-peer.ns.svc.cluster.local:7380", i, i)
		if i >= len(members) || members[i] != want {
			t.Errorf("--initial-cluster member %d = %q, want %q", i, members, want)
		}
	}
	if len(members) != replicas {
		t.Errorf("--initial-cluster has %d members, the StatefulSet %d pods", len(members), replicas)
	}
	// The flags parse: `cairn server --help` lists each of them.
	bin := filepath.Join(t.TempDir(), "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/cairn").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	help, err := exec.Command(bin, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("cairn server --help: %v\n%s", err, help)
	}
	for _, a := range args {
		flag, _, _ := strings.Cut(a, "=")
		if !strings.Contains(string(help), flag+" ") {
			t.Errorf("the manifest passes %s, which `cairn server --help` does not list", flag)
		}
	}
}

// get walks nested maps by keys; nil when a key is missing.
func get(o map[string]any, path ...string) any {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}
