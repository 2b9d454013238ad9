// Goal: POST /v1/txn: the JSON shape (reads, checks, conditional puts,
// deletes; strings and base64), results in order with base64 values for
// reads, 412 on a failed check with nothing applied, 409 txn_conflict for
// a conflict, 400 for every malformed op.
// Method: the handler over kvtest.MemService (whose Txn is all or
// nothing), fault injection for the conflict.
package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/kv"
)

func TestTxnJSON(t *testing.T) {
	e := newTestEnv(t)
	va := put(t, e, "/v1/kv/default/a", "1")
	w := e.do(t, "POST", "/v1/txn", []byte(fmt.Sprintf(`{"ops":[
		{"op":"check","table":"default","key":"a","version":%d},
		{"op":"read","table":"default","key":"a"},
		{"op":"put","table":"default","key":"b","value":"two","if_absent":true},
		{"op":"put","table":"default","key_base64":"AP8=","value_base64":"AAE="},
		{"op":"delete","table":"default","key":"nothing"}]}`, va)))
	wantStatus(t, w, http.StatusOK)
	var out kv.TxnReplyJSON
	decodeJSON(t, w, &out)
	if len(out.Results) != 5 || out.Results[1].Value == nil || *out.Results[1].Value != "MQ==" || out.Results[1].Version != va ||
		!out.Results[2].Found || out.Results[2].Version == 0 || out.Results[2].Value != nil {
		t.Fatalf("results: %+v", out.Results)
	}
	if got := e.do(t, "GET", "/v1/kv/default/%00%FF", nil); got.Body.String() != "\x00\x01" {
		t.Fatalf("base64 put: %q", got.Body.String())
	}

	// A failed check: 412, nothing applied.
	w = e.do(t, "POST", "/v1/txn", []byte(`{"ops":[
		{"op":"put","table":"default","key":"c","value":"x"},
		{"op":"check","table":"default","key":"b","value":"not two"}]}`))
	wantError(t, w, http.StatusPreconditionFailed, "condition_failed")
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/c", nil), http.StatusNotFound)

	// A conflict: 409, retryable code.
	e.svc.SetFail(func(method string, key []byte) error {
		if method == "Txn" {
			return kv.Errorf(kv.ErrTxnConflict, "locked")
		}
		return nil
	})
	w = e.do(t, "POST", "/v1/txn", []byte(`{"ops":[{"op":"read","table":"default","key":"a"}]}`))
	wantError(t, w, http.StatusConflict, "txn_conflict")
	e.svc.SetFail(nil)

	for _, bad := range []string{
		`{}`, `{"ops":[]}`, `[]`, `{"ops":[{"op":"read","table":"default"}]}`,
		`{"ops":[{"op":"frob","table":"default","key":"a"}]}`,
		`{"ops":[{"op":"read","table":"BAD","key":"a"}]}`,
		`{"ops":[{"op":"read","table":"default","key":"a","value":"x"}]}`,
		`{"ops":[{"op":"check","table":"default","key":"a"}]}`,
		`{"ops":[{"op":"check","table":"default","key":"a","version":1,"absent":true}]}`,
		`{"ops":[{"op":"put","table":"default","key":"a"}]}`,
		`{"ops":[{"op":"put","table":"default","key":"a","value":"x","version":3}]}`,
		`{"ops":[{"op":"delete","table":"default","key":"a","value":"x"}]}`,
		`{"ops":[{"op":"read","table":"default","key":"a","key_base64":"YQ=="}]}`,
		`{"ops":[{"op":"read","table":"default","key_base64":"!!"}]}`,
		`{"ops":[{"op":"read","table":"default","key":"a","extra":1}]}`,
		`{"ops":[{"op":"read","table":"default","key":"` + strings.Repeat("k", 5000) + `"}]}`,
	} {
		w := e.do(t, "POST", "/v1/txn", []byte(bad))
		wantError(t, w, http.StatusBadRequest, "invalid_argument")
	}
	if w := e.do(t, "GET", "/v1/txn", nil); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/txn: %d", w.Code)
	}
}
