package httpapi

import (
	"net/http"

	"github.com/cairn-db/cairn/internal/kv"
)

// POST /v1/txn: a transaction in the JSON of kv.TxnJSON; the reply is
// kv.TxnReplyJSON. 412 when a check or condition fails, 409 (code
// txn_conflict, retryable) on a conflict.

// maxTxnBodyBytes bounds a POST /v1/txn body: the value limit times 16
// (the transaction limits proper are the router's).
func (h *handler) maxTxnBodyBytes() int { return 16*h.limits.MaxValueBytes + 64<<10 }

func (h *handler) txn(w *statusWriter, r *http.Request) {
	tx, ok := h.svc.(kv.Transactor)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInternal, "transactions are not available"))
		return
	}
	body, err := readBody(w, r, h.maxTxnBodyBytes())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := kv.DecodeTxnJSON(body, h.limits)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := tx.Txn(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, kv.EncodeTxnReply(req, resp))
}
