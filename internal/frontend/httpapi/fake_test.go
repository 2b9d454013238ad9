package httpapi

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// fakeService is a kv.Service over plain maps: per-key versions from one
// global counter (so a key's versions only grow, across deletes too),
// conditions, tables. It does not validate input, so tests see what the
// handler lets through.
//
// Errors can be injected two ways: err (every call returns it) and keys
// beginning with unavailablePrefix (Get/Put/Delete return ErrUnavailable).
// injected counts the errors so injected.
type fakeService struct {
	mu struct {
		sync.Mutex
		err      error
		notReady error
		version  uint64
		nextID   uint64
		tables   map[string]*cairnpb.Table
		data     map[string]map[string]fakeEntry // table -> key -> entry
	}
	injected atomic.Int64
}

const unavailablePrefix = "!unavailable"

type fakeEntry struct {
	value   []byte
	version uint64
}

func newFakeService() *fakeService {
	f := &fakeService{}
	f.mu.tables = map[string]*cairnpb.Table{}
	f.mu.data = map[string]map[string]fakeEntry{}
	f.createLocked("default")
	return f
}

func (f *fakeService) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.err = err
}

func (f *fakeService) setNotReady(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.notReady = err
}

// failLocked returns the injected error for a call touching key, if any.
func (f *fakeService) failLocked(key []byte) error {
	if f.mu.err != nil {
		f.injected.Add(1)
		return f.mu.err
	}
	if bytes.HasPrefix(key, []byte(unavailablePrefix)) {
		f.injected.Add(1)
		return kv.Errorf(kv.ErrUnavailable, "injected")
	}
	return nil
}

func (f *fakeService) createLocked(name string) *cairnpb.Table {
	f.mu.nextID++
	t := &cairnpb.Table{
		Name: name, Id: f.mu.nextID, Partitioning: "range", Replicas: 1,
		Ranges: []*cairnpb.RangeDescriptor{{Id: f.mu.nextID, TableId: f.mu.nextID, Replicas: []uint64{1}}},
	}
	f.mu.tables[name] = t
	f.mu.data[name] = map[string]fakeEntry{}
	return t
}

func (f *fakeService) tableLocked(name string) (map[string]fakeEntry, error) {
	d, ok := f.mu.data[name]
	if !ok {
		return nil, kv.Errorf(kv.ErrTableNotFound, "table %q", name)
	}
	return d, nil
}

func checkCondition(c *cairnpb.Condition, e fakeEntry, exists bool) error {
	switch {
	case c == nil:
		return nil
	case c.Absent && exists:
		return kv.Errorf(kv.ErrConditionFailed, "key exists at version %d", e.version)
	case c.Version != 0 && (!exists || e.version != c.Version):
		return kv.Errorf(kv.ErrConditionFailed, "version is not %d", c.Version)
	}
	return nil
}

func (f *fakeService) Get(_ context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(req.Key); err != nil {
		return nil, err
	}
	d, err := f.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	e, ok := d[string(req.Key)]
	if !ok {
		return nil, kv.Errorf(kv.ErrNotFound, "key %q", req.Key)
	}
	return &cairnpb.GetResponse{Value: bytes.Clone(e.value), Version: e.version}, nil
}

func (f *fakeService) Put(_ context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(req.Key); err != nil {
		return nil, err
	}
	d, err := f.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	e, ok := d[string(req.Key)]
	if err := checkCondition(req.Condition, e, ok); err != nil {
		return nil, err
	}
	f.mu.version++
	d[string(req.Key)] = fakeEntry{value: bytes.Clone(req.Value), version: f.mu.version}
	return &cairnpb.PutResponse{Version: f.mu.version}, nil
}

func (f *fakeService) Delete(_ context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(req.Key); err != nil {
		return nil, err
	}
	d, err := f.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	e, ok := d[string(req.Key)]
	if !ok && (req.Condition == nil || req.Condition.Absent) {
		return nil, kv.Errorf(kv.ErrNotFound, "key %q", req.Key)
	}
	if err := checkCondition(req.Condition, e, ok); err != nil {
		return nil, err
	}
	delete(d, string(req.Key))
	return &cairnpb.DeleteResponse{Version: e.version}, nil
}

func (f *fakeService) List(_ context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(nil); err != nil {
		return nil, err
	}
	d, err := f.tableLocked(req.Table)
	if err != nil {
		return nil, err
	}
	after, err := kv.DecodePageToken(req.PageToken, kv.Limits{MaxKeyBytes: 1 << 20})
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		if !strings.HasPrefix(k, string(req.Prefix)) || k < string(req.Start) ||
			len(req.End) > 0 && k >= string(req.End) ||
			after != nil && k <= string(after) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	limit := int(req.Limit)
	if limit == 0 {
		limit = kv.DefaultLimits.DefaultListLimit
	}
	resp := &cairnpb.ListResponse{}
	for i, k := range keys {
		if i == limit {
			resp.NextPageToken = kv.EncodePageToken([]byte(keys[i-1]))
			break
		}
		item := &cairnpb.KeyValue{Key: []byte(k), Version: d[k].version}
		if req.Values {
			item.Value = bytes.Clone(d[k].value)
		}
		resp.Items = append(resp.Items, item)
	}
	return resp, nil
}

func (f *fakeService) CreateTable(_ context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(nil); err != nil {
		return nil, err
	}
	if _, ok := f.mu.tables[req.Name]; ok {
		return nil, kv.Errorf(kv.ErrTableExists, "table %q", req.Name)
	}
	return f.createLocked(req.Name), nil
}

func (f *fakeService) GetTable(_ context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(nil); err != nil {
		return nil, err
	}
	t, ok := f.mu.tables[req.Name]
	if !ok {
		return nil, kv.Errorf(kv.ErrTableNotFound, "table %q", req.Name)
	}
	return t, nil
}

func (f *fakeService) ListTables(_ context.Context, _ *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(nil); err != nil {
		return nil, err
	}
	resp := &cairnpb.ListTablesResponse{}
	for _, t := range f.mu.tables {
		resp.Tables = append(resp.Tables, t)
	}
	sort.Slice(resp.Tables, func(i, j int) bool { return resp.Tables[i].Name < resp.Tables[j].Name })
	return resp, nil
}

func (f *fakeService) DropTable(_ context.Context, req *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(nil); err != nil {
		return nil, err
	}
	if _, ok := f.mu.tables[req.Name]; !ok {
		return nil, kv.Errorf(kv.ErrTableNotFound, "table %q", req.Name)
	}
	delete(f.mu.tables, req.Name)
	delete(f.mu.data, req.Name)
	return &cairnpb.DropTableResponse{}, nil
}

func (f *fakeService) ClusterStatus(context.Context) (*cairnpb.ClusterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failLocked(nil); err != nil {
		return nil, err
	}
	return &cairnpb.ClusterStatus{
		Nodes: []*cairnpb.NodeStatus{{Id: 1, Name: "n1", Address: "127.0.0.1:7379", Alive: true, Ranges: 2, Leaders: 2}},
		Ranges: []*cairnpb.RangeStatus{{
			Id: 1, Table: "default", Start: []byte("a"), End: []byte("m"), Replicas: []uint64{1},
			Leader: 1, Term: 3, CommitIndex: 10, AppliedIndex: 9, SizeBytes: 4096,
		}, {Id: 2, Table: "default", Start: []byte("m")}},
	}, nil
}

func (f *fakeService) Ready(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.notReady
}

var _ kv.Service = (*fakeService)(nil)
