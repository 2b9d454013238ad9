package kv

import (
	"fmt"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// Limits are the input limits checked at the edge. The zero value is not
// valid; use DefaultLimits.
type Limits struct {
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxListLimit caps ListRequest.limit; DefaultListLimit applies when 0.
	MaxListLimit     int
	DefaultListLimit int
}

// DefaultLimits are the contract's defaults: key <= 4 KiB, value <= 1 MiB.
var DefaultLimits = Limits{
	MaxKeyBytes:      4 << 10,
	MaxValueBytes:    1 << 20,
	MaxListLimit:     10000,
	DefaultListLimit: 1000,
}

// MaxReplicas is the most voters a range may have (a table's
// replication factor).
const MaxReplicas = 7

// MaxHistoryVersions and MaxHistoryRetention bound a table's key history
// retention (a long one costs disk for every key rewritten often).
const (
	MaxHistoryVersions  = 10000
	MaxHistoryRetention = 30 * 24 * time.Hour
)

// ValidateHistory checks a table's key history retention settings (nil:
// not set).
func ValidateHistory(versions *uint32, retentionMs *uint64) error {
	if versions != nil && *versions > MaxHistoryVersions {
		return Errorf(ErrInvalidArgument, "history versions %d: at most %d", *versions, MaxHistoryVersions)
	}
	if retentionMs != nil && *retentionMs > uint64(MaxHistoryRetention/time.Millisecond) {
		return Errorf(ErrInvalidArgument, "history retention %v: at most %v", time.Duration(*retentionMs)*time.Millisecond, MaxHistoryRetention)
	}
	return nil
}

// MaxLearners is the most read learners a table may ask for per range
// (each is a full copy that every write is sent to).
const MaxLearners = 7

// MaxTableNameBytes is the longest table name.
const MaxTableNameBytes = 64

// ValidateTableName checks a table name against [a-z0-9_-]{1,64}.
func ValidateTableName(name string) error {
	if len(name) == 0 {
		return Errorf(ErrInvalidArgument, "table name is empty")
	}
	if len(name) > MaxTableNameBytes {
		return Errorf(ErrInvalidArgument, "table name is %d bytes; the limit is %d", len(name), MaxTableNameBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Errorf(ErrInvalidArgument, "table name %q: only a-z, 0-9, _ and - are allowed", name)
		}
	}
	return nil
}

// ValidateKey checks a key is non-empty and within the limit.
func (l Limits) ValidateKey(key []byte) error {
	if len(key) == 0 {
		return Errorf(ErrInvalidArgument, "key is empty")
	}
	if len(key) > l.MaxKeyBytes {
		return Errorf(ErrInvalidArgument, "key is %d bytes; the limit is %d", len(key), l.MaxKeyBytes)
	}
	return nil
}

// ValidateValue checks a value is within the limit.
func (l Limits) ValidateValue(value []byte) error {
	if len(value) > l.MaxValueBytes {
		return Errorf(ErrInvalidArgument, "value is %d bytes; the limit is %d", len(value), l.MaxValueBytes)
	}
	return nil
}

func validateCondition(c *cairnpb.Condition) error {
	if c != nil && c.Absent && c.Version != 0 {
		return Errorf(ErrInvalidArgument, "a condition cannot require both a version and absence")
	}
	if c != nil && c.Value != nil {
		return Errorf(ErrInvalidArgument, "a value compare is only for transactions (POST /v1/txn, KV.Txn)")
	}
	return nil
}

// ValidateGet checks a GetRequest.
func (l Limits) ValidateGet(r *cairnpb.GetRequest) error {
	if err := ValidateTableName(r.Table); err != nil {
		return err
	}
	return l.ValidateKey(r.Key)
}

// ValidatePut checks a PutRequest.
func (l Limits) ValidatePut(r *cairnpb.PutRequest) error {
	if err := ValidateTableName(r.Table); err != nil {
		return err
	}
	if err := l.ValidateKey(r.Key); err != nil {
		return err
	}
	if err := l.ValidateValue(r.Value); err != nil {
		return err
	}
	if err := ValidateTTL(r); err != nil {
		return err
	}
	return validateCondition(r.Condition)
}

// MaxTTLMs is the longest TTL a write may ask for, in milliseconds (about
// 142,000 years: any Unix time Redis clients use fits, and expiry times
// cannot overflow).
const MaxTTLMs = 1 << 52

// ValidateTTL checks the TTL fields of a put.
func ValidateTTL(r *cairnpb.PutRequest) error {
	switch {
	case r.TtlMs < 0:
		return Errorf(ErrInvalidArgument, "ttl must be positive, got %d ms", r.TtlMs)
	case r.TtlMs > MaxTTLMs:
		return Errorf(ErrInvalidArgument, "ttl of %d ms exceeds the limit of %d ms", r.TtlMs, int64(MaxTTLMs))
	case r.TtlMs > 0 && r.KeepTtl:
		return Errorf(ErrInvalidArgument, "ttl and keep_ttl exclude each other")
	}
	return nil
}

// ValidateDelete checks a DeleteRequest.
func (l Limits) ValidateDelete(r *cairnpb.DeleteRequest) error {
	if err := ValidateTableName(r.Table); err != nil {
		return err
	}
	if err := l.ValidateKey(r.Key); err != nil {
		return err
	}
	return validateCondition(r.Condition)
}

// ValidateList checks a ListRequest and returns the effective page size.
func (l Limits) ValidateList(r *cairnpb.ListRequest) (int, error) {
	if err := ValidateTableName(r.Table); err != nil {
		return 0, err
	}
	for _, b := range [][]byte{r.Prefix, r.Start, r.End} {
		if len(b) > l.MaxKeyBytes {
			return 0, Errorf(ErrInvalidArgument, "list bound is %d bytes; the limit is %d", len(b), l.MaxKeyBytes)
		}
	}
	n := int(r.Limit)
	if n == 0 {
		n = l.DefaultListLimit
	}
	if n > l.MaxListLimit {
		return 0, Errorf(ErrInvalidArgument, "limit %d is over the maximum %d", n, l.MaxListLimit)
	}
	return n, nil
}

// ValidateWatch checks a WatchRequest: a key (or a prefix, which may be
// empty) within the key limit.
func (l Limits) ValidateWatch(r *cairnpb.WatchRequest) error {
	if err := ValidateTableName(r.Table); err != nil {
		return err
	}
	if !r.Prefix && len(r.Key) == 0 {
		return Errorf(ErrInvalidArgument, "watch needs a key, or a prefix (an empty prefix watches the whole table)")
	}
	if len(r.Key) > l.MaxKeyBytes {
		return Errorf(ErrInvalidArgument, "key is %d bytes; the limit is %d", len(r.Key), l.MaxKeyBytes)
	}
	if len(r.ResumeToken) > 1<<20 {
		return Errorf(ErrInvalidArgument, "resume token is %d bytes; the limit is 1 MiB", len(r.ResumeToken))
	}
	if p := r.Part; p != nil && max(len(p.Start), len(p.End)) > l.MaxKeyBytes+16 {
		// A part's bounds are stored keys: a hash table's carry its hash.
		return Errorf(ErrInvalidArgument, "watch part bound is %d bytes; the limit is %d", max(len(p.Start), len(p.End)), l.MaxKeyBytes+16)
	}
	return nil
}

// ValidateHistory checks a HistoryRequest.
func (l Limits) ValidateHistory(r *cairnpb.HistoryRequest) error {
	if err := ValidateTableName(r.Table); err != nil {
		return err
	}
	if err := l.ValidateKey(r.Key); err != nil {
		return err
	}
	if int(r.Limit) > l.MaxListLimit {
		return Errorf(ErrInvalidArgument, "limit %d is over the maximum %d", r.Limit, l.MaxListLimit)
	}
	return nil
}

// MaxBatchOps bounds the operations of one atomic batch.
const MaxBatchOps = 1000

// ValidateBatch checks a BatchRequest: one table, at most MaxBatchOps
// operations, each key and value within the limits, total size within
// the value limit times 16 (one Raft entry must stay reasonable).
func (l Limits) ValidateBatch(r *cairnpb.BatchRequest) error {
	if err := ValidateTableName(r.Table); err != nil {
		return err
	}
	if len(r.Ops) == 0 {
		return Errorf(ErrInvalidArgument, "batch is empty")
	}
	if len(r.Ops) > MaxBatchOps {
		return Errorf(ErrInvalidArgument, "batch has %d operations; the limit is %d", len(r.Ops), MaxBatchOps)
	}
	total := 0
	for i, op := range r.Ops {
		var err error
		switch o := op.Op.(type) {
		case *cairnpb.BatchOp_Put:
			if err = l.ValidateKey(o.Put.Key); err == nil {
				if err = l.ValidateValue(o.Put.Value); err == nil {
					if err = ValidateTTL(o.Put); err == nil {
						err = validateCondition(o.Put.Condition)
					}
				}
			}
			total += len(o.Put.Key) + len(o.Put.Value)
		case *cairnpb.BatchOp_Delete:
			if err = l.ValidateKey(o.Delete.Key); err == nil {
				err = validateCondition(o.Delete.Condition)
			}
			total += len(o.Delete.Key)
		default:
			err = Errorf(ErrInvalidArgument, "operation is empty")
		}
		if err != nil {
			return fmt.Errorf("batch op %d: %w", i, err)
		}
	}
	if limit := 16 * l.MaxValueBytes; total > limit {
		return Errorf(ErrInvalidArgument, "batch is %d bytes; the limit is %d", total, limit)
	}
	return nil
}
