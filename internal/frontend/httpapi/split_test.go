package httpapi

import (
	"encoding/json"
	"testing"
)

// POST /v1/ranges/split {"table","key"} splits a range by hand: 200 with
// both ranges; bad bodies and refused splits get the usual JSON errors;
// other methods get 405.
func TestSplitRange(t *testing.T) {
	e := newTestEnv(t)
	w := e.do(t, "POST", "/v1/ranges/split", []byte(`{"table":"default","key":"m"}`))
	wantStatus(t, w, 200)
	var out struct {
		Left  json.RawMessage `json:"left"`
		Right json.RawMessage `json:"right"`
	}
	decodeJSON(t, w, &out)
	wantKeys(t, out.Right, "id", "start", "end", "replicas", "generation")
	var right rangeJSON
	if err := json.Unmarshal(out.Right, &right); err != nil || right.Start != "m" || right.End != "" || right.Generation != 1 {
		t.Errorf("right = %+v (%v)", right, err)
	}
	// The same boundary again: refused by the service, 400.
	wantStatus(t, e.do(t, "POST", "/v1/ranges/split", []byte(`{"table":"default","key":"m"}`)), 400)
	wantStatus(t, e.do(t, "POST", "/v1/ranges/split", []byte(`{"table":"nosuch","key":"m"}`)), 404)
	wantStatus(t, e.do(t, "POST", "/v1/ranges/split", []byte(`not json`)), 400)
	wantStatus(t, e.do(t, "GET", "/v1/ranges/split", nil), 405)
}

// POST /v1/ranges/merge {"table","key"} merges the range holding key with
// its right neighbour: 200 with the merged range; the last range, bad
// bodies and other methods get the usual errors.
func TestMergeRange(t *testing.T) {
	e := newTestEnv(t)
	wantStatus(t, e.do(t, "POST", "/v1/ranges/split", []byte(`{"table":"default","key":"m"}`)), 200)
	w := e.do(t, "POST", "/v1/ranges/merge", []byte(`{"table":"default","key":"a"}`))
	wantStatus(t, w, 200)
	var out struct {
		Merged json.RawMessage `json:"merged"`
	}
	decodeJSON(t, w, &out)
	wantKeys(t, out.Merged, "id", "start", "end", "replicas", "generation")
	var merged rangeJSON
	if err := json.Unmarshal(out.Merged, &merged); err != nil || merged.Start != "" || merged.End != "" || merged.Generation != 2 {
		t.Errorf("merged = %+v (%v)", merged, err)
	}
	// The only range has no right neighbour: 400.
	wantStatus(t, e.do(t, "POST", "/v1/ranges/merge", []byte(`{"table":"default","key":"a"}`)), 400)
	wantStatus(t, e.do(t, "POST", "/v1/ranges/merge", []byte(`{"table":"nosuch","key":"m"}`)), 404)
	wantStatus(t, e.do(t, "POST", "/v1/ranges/merge", []byte(`not json`)), 400)
	wantStatus(t, e.do(t, "GET", "/v1/ranges/merge", nil), 405)
}
