package robustness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// historyFile is the JSON a failing run saves: enough to re-check it
// offline (Check(h.Ops, h.Keys)) and to read what happened.
type historyFile struct {
	Scenario   string   `json:"scenario"`
	Seed       uint64   `json:"seed"`
	Duration   string   `json:"duration"`
	Nodes      []string `json:"nodes"`
	Keys       []string `json:"keys"`
	Reproduce  string   `json:"reproduce"`
	Violations []string `json:"violations"`
	Faults     []event  `json:"faults"`
	Ops        []*Op    `json:"ops"`
}

// artifactsRoot is where failing runs save their files.
func artifactsRoot() string {
	if d := os.Getenv("CAIRN_ROBUST_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "cairn-robustness")
}

// saveArtifacts writes history.json, violations.txt, a porcupine HTML
// page for every key that is not linearizable (with the faults drawn on
// it) and the nodes' logs, and returns the directory.
func saveArtifacts(t testing.TB, sc scenario, seed uint64, dur time.Duration, ops []*Op, rep *Report, tl *timeline, c *Cluster, root string) string {
	t.Helper()
	if root == "" {
		root = artifactsRoot()
	}
	dir := filepath.Join(root, fmt.Sprintf("%s-seed%d-%s", sc.name, seed, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts: %v", err)
		return dir
	}
	hf := historyFile{
		Scenario: sc.name, Seed: seed, Duration: dur.String(),
		Keys:       workloadKeys(12),
		Reproduce:  fmt.Sprintf("go test -count=1 ./tests/robustness -run 'TestRobustness/^%s$' -seed=%d -duration=%v -v", sc.name, seed, dur),
		Violations: rep.Violations,
		Faults:     tl.all(),
		Ops:        ops,
	}
	for _, n := range c.Nodes {
		hf.Nodes = append(hf.Nodes, fmt.Sprintf("%s id=%d uid=%d client=%s peer=%s", n.Name, n.ID, n.UID, n.Client, n.Peer))
	}
	if data, err := json.MarshalIndent(hf, "", " "); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "history.json"), data, 0o644); err != nil {
			t.Errorf("artifacts: %v", err)
		}
	}
	var lines []string
	lines = append(lines, "seed "+fmt.Sprint(seed), "reproduce: "+hf.Reproduce, rep.Summary(), "")
	lines = append(lines, rep.Violations...)
	lines = append(lines, "", "faults:")
	for _, ev := range hf.Faults {
		lines = append(lines, fmt.Sprintf("  %s..%s %s: %s", fmtNs(ev.Start), fmtNs(ev.End), ev.Who, ev.What))
	}
	if err := os.WriteFile(filepath.Join(dir, "violations.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Errorf("artifacts: %v", err)
	}
	writeVisualizations(t, dir, rep, hf.Faults)
	if c != nil {
		for _, n := range c.Nodes {
			if data, err := os.ReadFile(n.LogPath); err == nil {
				_ = os.WriteFile(filepath.Join(dir, n.Name+".log"), data, 0o644)
			}
		}
	}
	return dir
}

// writeVisualizations draws porcupine's HTML for each key that failed or
// timed out, with the faults as annotations.
func writeVisualizations(t testing.TB, dir string, rep *Report, faults []event) {
	keys := make([]string, 0, len(rep.infos))
	for k := range rep.infos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		info := rep.infos[k]
		var anns []porcupine.Annotation
		for _, ev := range faults {
			anns = append(anns, porcupine.Annotation{Tag: "faults", Start: ev.Start, End: ev.End,
				Description: ev.Who + ": " + ev.What, BackgroundColor: "#fbe3e3"})
		}
		info.AddAnnotations(anns)
		path := filepath.Join(dir, fmt.Sprintf("key-%s-%s.html", k, strings.ToLower(string(rep.Results[k]))))
		if err := porcupine.VisualizePath(rep.models[k], info, path); err != nil {
			t.Errorf("visualize %s: %v", k, err)
		}
	}
}
