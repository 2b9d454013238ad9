package watch

import (
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
)

// Event is one applied change of one key, as a replica applied it.
type Event struct {
	Table   keys.TableID
	Key     []byte
	Version uint64
	storage.Change
	// Start and End are the span of the range that applied the change.
	// Within one range changes apply in sequence (Change.Seq) order,
	// which is what a Position records per span.
	Start, End []byte
}
