// Package kvtest provides an in-memory kv.Service for the unit tests of
// front ends, the client library and the CLI: tables of sorted keys with
// versions from one counter, conditional writes, paged listings, and fault
// injection. It is a test double, never used by a node.
package kvtest

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
)

// MemService is an in-memory kv.Service: tables of sorted keys with
// versions from one counter, conditional writes and paged listings. fail,
// when set, runs first in every method and its non-nil error is returned
// instead (fault injection). calls counts calls per method.
type MemService struct {
	mu     sync.Mutex
	writes uint64 // successful writes: the one "range"'s log position
	// lastGetToken is the session token of the last Get.
	lastGetToken string
	// levels are the tables' default read levels.
	levels map[string]string
	// settings are the tables' other settings as created or updated
	// (replicas, learners, quotas).
	settings map[string]*cairnpb.Table
	// hashed are the tables created with "hash" partitioning, with their
	// number of ranges (descriptors only: the fake stores every table in
	// one map, sorted by key).
	hashed   map[string]int
	tables   map[string]map[string]memEntry
	ids      map[string]uint64
	version  uint64
	calls    map[string]int
	fail     func(method string, key []byte) error
	notReady error
	injected int64
	status   *cairnpb.ClusterStatus
	now      func() time.Time
	// splits are the split keys of each table, sorted (SplitRange).
	splits map[string][]string
}

type memEntry struct {
	value    []byte
	version  uint64
	expireAt int64 // unix ms; 0: no TTL
}

// SetNow replaces the clock that decides TTL expiry (time.Now by default).
func (m *MemService) SetNow(now func() time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = now
}

func (m *MemService) nowMs() int64 {
	if m.now == nil {
		return time.Now().UnixMilli()
	}
	return m.now().UnixMilli()
}

// liveLocked returns key's entry, dropping it if it has expired.
func (m *MemService) liveLocked(t map[string]memEntry, key string) (memEntry, bool) {
	e, ok := t[key]
	if ok && e.expireAt != 0 && e.expireAt <= m.nowMs() {
		delete(t, key)
		return memEntry{}, false
	}
	return e, ok
}

func NewMemService() *MemService {
	return &MemService{
		tables: map[string]map[string]memEntry{"default": {}},
		ids:    map[string]uint64{"default": 1},
		calls:  map[string]int{},
		levels: map[string]string{}, settings: map[string]*cairnpb.Table{},
		hashed: map[string]int{},
	}
}

// SetFail installs a fault injector: it runs first in every method with
// the method's name and the request's key (nil for methods without one),
// and its non-nil error is returned instead of doing the call.
func (m *MemService) SetFail(f func(method string, key []byte) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

// SetClusterStatus makes ClusterStatus return st (nil: a one-node default).
func (m *MemService) SetClusterStatus(st *cairnpb.ClusterStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status = st
}

// SetNotReady makes Ready return err (nil: ready).
func (m *MemService) SetNotReady(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notReady = err
}

// Injected counts the errors the fault injector returned.
func (m *MemService) Injected() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.injected
}

func (m *MemService) CallCount(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

// enterLocked counts a call and returns the injected error, if any.
func (m *MemService) enterLocked(method string, key []byte) error {
	m.calls[method]++
	if m.fail == nil {
		return nil
	}
	err := m.fail(method, key)
	if err != nil {
		m.injected++
	}
	return err
}

func (m *MemService) tableLocked(name string) (map[string]memEntry, error) {
	t, ok := m.tables[name]
	if !ok {
		return nil, kv.Errorf(kv.ErrTableNotFound, "table %q", name)
	}
	return t, nil
}

func checkCondition(c *cairnpb.Condition, e memEntry, exists bool) error {
	switch {
	case c == nil:
		return nil
	case c.Absent && exists:
		return kv.Errorf(kv.ErrConditionFailed, "key exists at version %d", e.version)
	case c.Version != 0 && !exists:
		return kv.Errorf(kv.ErrConditionFailed, "key is absent; expected version %d", c.Version)
	case c.Version != 0 && c.Version != e.version:
		return kv.Errorf(kv.ErrConditionFailed, "key is at version %d; expected %d", e.version, c.Version)
	}
	return nil
}

func (m *MemService) Get(_ context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("Get", req.Key); err != nil {
		return nil, err
	}
	if _, err := kv.DecodeSessionToken(req.SessionToken); err != nil {
		return nil, err
	}
	m.lastGetToken = req.SessionToken
	t, err := m.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	e, ok := m.liveLocked(t, string(req.Key))
	if !ok {
		tok, level := m.servedLocked(req.Consistency)
		return nil, &kv.ReadMissError{SessionToken: tok, ServedConsistency: level, ServedBy: 1}
	}
	tok, level := m.servedLocked(req.Consistency)
	return &cairnpb.GetResponse{Value: e.value, Version: e.version, ExpireAtMs: e.expireAt,
		SessionToken: tok, ServedConsistency: level, ServedBy: 1}, nil
}

func (m *MemService) Put(_ context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("Put", req.Key); err != nil {
		return nil, err
	}
	t, err := m.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	if err := kv.ValidateTTL(req); err != nil {
		return nil, err
	}
	e, ok := m.liveLocked(t, string(req.Key))
	if err := checkCondition(req.Condition, e, ok); err != nil {
		return nil, err
	}
	m.version++
	ne := memEntry{value: bytes.Clone(req.Value), version: m.version}
	switch {
	case req.KeepTtl:
		ne.expireAt = e.expireAt
	case req.TtlMs > 0:
		ne.expireAt = m.nowMs() + req.TtlMs
	}
	t[string(req.Key)] = ne
	m.writes++
	tok, _ := m.servedLocked("")
	return &cairnpb.PutResponse{Version: m.version, SessionToken: tok}, nil
}

func (m *MemService) Delete(_ context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("Delete", req.Key); err != nil {
		return nil, err
	}
	t, err := m.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	e, ok := m.liveLocked(t, string(req.Key))
	if err := checkCondition(req.Condition, e, ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, kv.Errorf(kv.ErrNotFound, "key %q", req.Key)
	}
	delete(t, string(req.Key))
	m.writes++
	tok, _ := m.servedLocked("")
	return &cairnpb.DeleteResponse{Version: e.version, SessionToken: tok}, nil
}

func (m *MemService) List(_ context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("List", nil); err != nil {
		return nil, err
	}
	t, err := m.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	limit, err := kv.DefaultLimits.ValidateList(req)
	if err != nil {
		return nil, err
	}
	after, err := kv.DecodePageToken(req.PageToken, kv.DefaultLimits)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		if _, ok := m.liveLocked(t, k); ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	tok, level := m.servedLocked(req.Consistency)
	resp := &cairnpb.ListResponse{SessionToken: tok, ServedConsistency: level, ServedBy: 1}
	for _, k := range keys {
		switch {
		case !strings.HasPrefix(k, string(req.Prefix)),
			k < string(req.Start),
			len(req.End) > 0 && k >= string(req.End),
			req.PageToken != "" && k <= string(after):
			continue
		}
		if len(resp.Items) == limit {
			resp.NextPageToken = kv.EncodePageToken(resp.Items[limit-1].Key)
			break
		}
		item := &cairnpb.KeyValue{Key: []byte(k), Version: t[k].version, ExpireAtMs: t[k].expireAt}
		if req.Values {
			item.Value = t[k].value
		}
		resp.Items = append(resp.Items, item)
	}
	return resp, nil
}

func (m *MemService) describeLocked(name string) *cairnpb.Table {
	t := &cairnpb.Table{Name: name, Id: m.ids[name], Partitioning: "range", Replicas: 1,
		Ranges:      []*cairnpb.RangeDescriptor{{Id: m.ids[name], TableId: m.ids[name], Replicas: []uint64{1}}},
		Consistency: m.levels[name]}
	if st := m.settings[name]; st != nil {
		t.Replicas, t.Learners, t.MaxBytes, t.MaxWritesPerSec, t.MaxReadsPerSec = st.Replicas, st.Learners, st.MaxBytes, st.MaxWritesPerSec, st.MaxReadsPerSec
		t.HistoryVersions, t.HistoryRetentionMs = st.HistoryVersions, st.HistoryRetentionMs
	}
	if n, ok := m.hashed[name]; ok {
		t.Partitioning, t.Ranges = "hash", nil
		bounds := hashkey.InitialBounds(n)
		for i := 0; i < n; i++ {
			d := &cairnpb.RangeDescriptor{Id: m.ids[name]<<16 | uint64(i), TableId: m.ids[name], Replicas: []uint64{1}}
			if i > 0 {
				d.Start = bounds[i-1]
			}
			if i < n-1 {
				d.End = bounds[i]
			}
			t.Ranges = append(t.Ranges, d)
		}
	}
	return t
}

func (m *MemService) CreateTable(_ context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("CreateTable", nil); err != nil {
		return nil, err
	}
	if _, ok := m.tables[req.Name]; ok {
		return nil, kv.Errorf(kv.ErrTableExists, "table %q", req.Name)
	}
	switch req.Partitioning {
	case "", "range":
	case "hash":
		if req.InitialRanges > hashkey.MaxInitialRanges {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "initial_ranges %d is over %d", req.InitialRanges, hashkey.MaxInitialRanges)
		}
		m.hashed[req.Name] = max(int(req.InitialRanges), 1)
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "partitioning %q is not supported", req.Partitioning)
	}
	m.tables[req.Name] = map[string]memEntry{}
	m.ids[req.Name] = uint64(len(m.ids) + 1)
	if req.Consistency != "" {
		m.levels[req.Name] = req.Consistency
	}
	if err := kv.ValidateHistory(req.HistoryVersions, req.HistoryRetentionMs); err != nil {
		return nil, err
	}
	m.settings[req.Name] = &cairnpb.Table{Replicas: max(req.Replicas, 1), Learners: req.Learners, MaxBytes: req.MaxBytes, MaxWritesPerSec: req.MaxWritesPerSec, MaxReadsPerSec: req.MaxReadsPerSec,
		HistoryVersions: req.HistoryVersions, HistoryRetentionMs: req.HistoryRetentionMs}
	return m.describeLocked(req.Name), nil
}

// UpdateTable changes the settings req sets, checked as the cluster does.
func (m *MemService) UpdateTable(_ context.Context, req *cairnpb.UpdateTableRequest) (*cairnpb.Table, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("UpdateTable", nil); err != nil {
		return nil, err
	}
	if _, err := m.tableLocked(req.Name); err != nil {
		return nil, err
	}
	if err := kv.ValidateTableUpdate(req); err != nil {
		return nil, err
	}
	st := m.settings[req.Name]
	if st == nil {
		st = &cairnpb.Table{Replicas: 1}
		m.settings[req.Name] = st
	}
	if req.Consistency != nil {
		m.levels[req.Name] = *req.Consistency
		if *req.Consistency == kv.Linearizable {
			delete(m.levels, req.Name)
		}
	}
	kv.ApplyTableUpdate(st, req)
	return m.describeLocked(req.Name), nil
}

func (m *MemService) GetTable(_ context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("GetTable", nil); err != nil {
		return nil, err
	}
	if _, err := m.tableLocked(req.Name); err != nil {
		return nil, err
	}
	return m.describeLocked(req.Name), nil
}

func (m *MemService) ListTables(context.Context, *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("ListTables", nil); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m.tables))
	for n := range m.tables {
		names = append(names, n)
	}
	sort.Strings(names)
	resp := &cairnpb.ListTablesResponse{}
	for _, n := range names {
		resp.Tables = append(resp.Tables, m.describeLocked(n))
	}
	return resp, nil
}

func (m *MemService) DropTable(_ context.Context, req *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("DropTable", nil); err != nil {
		return nil, err
	}
	if _, err := m.tableLocked(req.Name); err != nil {
		return nil, err
	}
	delete(m.tables, req.Name)
	delete(m.ids, req.Name)
	delete(m.hashed, req.Name)
	return &cairnpb.DropTableResponse{}, nil
}

func (m *MemService) ClusterStatus(context.Context) (*cairnpb.ClusterStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("ClusterStatus", nil); err != nil {
		return nil, err
	}
	if m.status != nil {
		return m.status, nil
	}
	return &cairnpb.ClusterStatus{
		Nodes: []*cairnpb.NodeStatus{{Id: 1, Name: "n1", Address: "127.0.0.1:7379", Alive: true, Ranges: 2, Leaders: 2}},
		Ranges: []*cairnpb.RangeStatus{
			{Id: 1, Table: "default", Replicas: []uint64{1}, Leader: 1, Term: 2, CommitIndex: 10, AppliedIndex: 10, SizeBytes: 4096},
		},
	}, nil
}

var _ kv.Splitter = (*MemService)(nil)

// SplitRange implements kv.Splitter: it records key as a range boundary of
// the table (ranges are numbered by position, from 1) and returns the two
// ranges around it. Data is not affected (MemService has no ranges).
func (m *MemService) SplitRange(_ context.Context, req *cairnpb.SplitRangeRequest) (*cairnpb.SplitRangeResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("SplitRange", req.Key); err != nil {
		return nil, err
	}
	if _, err := m.tableLocked(req.Table); err != nil {
		return nil, err
	}
	if len(req.Key) == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "split key must not be empty")
	}
	if m.splits == nil {
		m.splits = map[string][]string{}
	}
	ks := m.splits[req.Table]
	i, found := slices.BinarySearch(ks, string(req.Key))
	if found {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "key %q is already the start of a range", req.Key)
	}
	ks = slices.Insert(ks, i, string(req.Key))
	m.splits[req.Table] = ks
	bound := func(j int) []byte {
		if j < 0 || j >= len(ks) {
			return nil
		}
		return []byte(ks[j])
	}
	gen := uint64(len(ks))
	return &cairnpb.SplitRangeResponse{
		Left:  &cairnpb.RangeDescriptor{Id: uint64(i + 1), TableId: m.ids[req.Table], Start: bound(i - 1), End: bound(i), Replicas: []uint64{1}, Generation: gen},
		Right: &cairnpb.RangeDescriptor{Id: uint64(i + 2), TableId: m.ids[req.Table], Start: bound(i), End: bound(i + 1), Replicas: []uint64{1}, Generation: gen},
	}, nil
}

var _ kv.Merger = (*MemService)(nil)

// MergeRange implements kv.Merger: it removes the boundary that ends the
// range holding key (see SplitRange) and returns the merged range.
func (m *MemService) MergeRange(_ context.Context, req *cairnpb.MergeRangeRequest) (*cairnpb.MergeRangeResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("MergeRange", req.Key); err != nil {
		return nil, err
	}
	if _, err := m.tableLocked(req.Table); err != nil {
		return nil, err
	}
	ks := m.splits[req.Table]
	// The range holding key ends at the first boundary above key.
	i, _ := slices.BinarySearch(ks, string(req.Key)+"\x00")
	if i >= len(ks) {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "the range holding %q is the last range of table %q", req.Key, req.Table)
	}
	ks = slices.Delete(ks, i, i+1)
	m.splits[req.Table] = ks
	bound := func(j int) []byte {
		if j < 0 || j >= len(ks) {
			return nil
		}
		return []byte(ks[j])
	}
	return &cairnpb.MergeRangeResponse{Merged: &cairnpb.RangeDescriptor{
		Id: uint64(i + 1), TableId: m.ids[req.Table], Start: bound(i - 1), End: bound(i), Replicas: []uint64{1}, Generation: uint64(len(ks)) + 2, // above the generations SplitRange gave
	}}, nil
}

func (m *MemService) Ready(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notReady
}

// History implements kv.Historian over the current values only: a key's
// history is its current value (older versions count as compacted).
func (m *MemService) History(_ context.Context, req *cairnpb.HistoryRequest) (*cairnpb.HistoryResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enterLocked("History", req.Key); err != nil {
		return nil, err
	}
	t, err := m.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	e, ok := m.liveLocked(t, string(req.Key))
	if !ok {
		if req.AtVersion > 0 {
			return nil, kv.Errorf(kv.ErrNotFound, "key %q", req.Key)
		}
		return &cairnpb.HistoryResponse{}, nil
	}
	c := &cairnpb.WatchEvent{Key: req.Key, Value: e.value, Version: e.version, ExpireAtMs: e.expireAt}
	if req.AtVersion > 0 && req.AtVersion < e.version {
		return nil, kv.Errorf(kv.ErrCompacted, "version %d of key %q is not retained", req.AtVersion, req.Key)
	}
	return &cairnpb.HistoryResponse{Changes: []*cairnpb.WatchEvent{c}}, nil
}

// Watch implements kv.Watcher as a stream that is caught up at once and
// then ends: enough for front-end tests, which never wait for changes.
func (m *MemService) Watch(_ context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	m.mu.Lock()
	err := m.enterLocked("Watch", req.Key)
	if err == nil {
		_, err = m.tableLocked(req.Table)
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return send(&cairnpb.WatchResponse{ResumeToken: "AQEAAA"})
}

// servedLocked says how a read at level was served: the service is one
// range (ID 1, table 1) on node 1 whose log position counts the writes,
// and it serves every level as asked (linearizable when none is).
func (m *MemService) servedLocked(level string) (token, served string) {
	var t kv.SessionToken
	t.Observe(kv.SessionEntry{Table: 1, Range: 1, Index: 10 + m.writes})
	if level == "" {
		level = kv.Linearizable
	}
	return t.Encode(), level
}

// LastGetToken returns the session token the last Get carried.
func (m *MemService) LastGetToken() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastGetToken
}

// Txn implements kv.Transactor: the operations apply all or nothing under
// the service's lock, conditions checked against the state before.
func (m *MemService) Txn(_ context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(req.Ops) == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "transaction is empty")
	}
	out := &cairnpb.TxnResponse{}
	for _, op := range req.Ops {
		if err := m.enterLocked("Txn", op.Key); err != nil {
			return nil, err
		}
		t, err := m.tableLocked(op.Table)
		if err != nil {
			return nil, err
		}
		e, ok := m.liveLocked(t, string(op.Key))
		if err := checkCondition(op.Condition, e, ok); err != nil {
			return nil, err
		}
		if c := op.Condition; c != nil && c.Value != nil && (!ok || !bytes.Equal(c.Value, e.value)) {
			return nil, kv.Errorf(kv.ErrConditionFailed, "value differs")
		}
		out.Results = append(out.Results, &cairnpb.TxnResult{Found: ok, Value: bytes.Clone(e.value), Version: e.version})
	}
	for i, op := range req.Ops {
		t := m.tables[op.Table]
		switch op.Kind {
		case cairnpb.TxnOp_PUT:
			m.version++
			t[string(op.Key)] = memEntry{value: bytes.Clone(op.Value), version: m.version}
			out.Results[i] = &cairnpb.TxnResult{Found: true, Version: m.version}
		case cairnpb.TxnOp_DELETE:
			delete(t, string(op.Key))
			out.Results[i].Value = nil
		}
	}
	return out, nil
}
