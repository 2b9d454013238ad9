package replica

import (
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
)

// Skipping the intent lookup when a range has no intents.
//
// Every plain write checks at apply that no transaction holds its key,
// and every read checks for an intent before it reads the value: a point
// lookup each, a tenth of a plain write's apply, for intents that exist
// only while a transaction is in flight. So a replica keeps intentFree:
// true only while the committed applied state and the apply batch being
// built hold no intent in the range's span.
//
//   - It goes false (mayHaveIntents) before anything that can bring an
//     intent into the span is written to the apply batch: a prewrite, a
//     snapshot, a merge (the right range's intents). A new replica (a
//     split's right half, a restart) starts false.
//   - It goes true only in the driver right after an apply batch is
//     committed (scanIntents, from ReleaseReads), when a scan of the
//     span's intents in Pebble finds none; nothing writes the span in
//     between. The scan runs at most once per intentScanInterval while
//     the flag is false.
//
// A reader that loads true after its read barrier saw, at that moment, a
// committed state without intents: reading the value afterwards is what
// it did before (intent first, then value), with the intent read as none.
// An intent applied later belongs to a transaction not yet committed, so
// the read may be ordered before it.

// intentScanInterval is the least time between two scans of a range's
// intents while intentFree is false.
const intentScanInterval = time.Second

// IntentFree reports that the committed state of the range holds no
// intent: a read may skip looking for one. Any goroutine.
func (r *Replica) IntentFree() bool { return r.intentFree.Load() }

// mayHaveIntents clears intentFree before the apply batch gets something
// that may hold intents. Driver only.
func (r *Replica) mayHaveIntents() { r.intentFree.Store(false) }

// scanIntents sets intentFree if the committed state has no intent in the
// range's span. Driver only, after an apply batch is committed.
func (r *Replica) scanIntents() {
	if r.intentFree.Load() || r.destroyed.Load() {
		return
	}
	now := r.nowNanos()
	if r.intentScanAt != 0 && now-r.intentScanAt < int64(intentScanInterval) {
		return
	}
	r.intentScanAt = now
	d := r.Desc()
	lo, hi := keys.IntentSpan(keys.TableID(d.TableId), d.Start, d.End)
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return
	}
	none := !it.First()
	if it.Close() == nil && none {
		r.intentFree.Store(true)
	}
}
