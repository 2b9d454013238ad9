package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
)

type tableJSON struct {
	Name         string `json:"name"`
	ID           uint64 `json:"id"`
	Partitioning string `json:"partitioning"`
	Replicas     uint32 `json:"replicas"`
	// Learners is the read learners per range the table asks for.
	Learners uint32 `json:"learners"`
	// Key history retention (absent: the node's defaults): at least the
	// newest HistoryKeep changes of each key, and those younger than
	// HistoryFor (a Go duration) before its latest.
	HistoryKeep *uint32     `json:"history_keep,omitempty"`
	HistoryFor  string      `json:"history_for,omitempty"`
	Ranges      []rangeJSON `json:"ranges"` // never null
	// Consistency is the default read level of the table.
	Consistency string `json:"consistency"`
	// Quotas; 0 (omitted) means none.
	MaxBytes        uint64 `json:"max_bytes,omitempty"`
	MaxWritesPerSec uint32 `json:"max_writes_per_sec,omitempty"`
	MaxReadsPerSec  uint32 `json:"max_reads_per_sec,omitempty"`
}

// rangeJSON is one range of a table, keys [start, end); end "" is the end
// of the table. Bounds are shown as strings, like keys.
type rangeJSON struct {
	ID       uint64   `json:"id"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Replicas []uint64 `json:"replicas"` // node IDs; never null
	Learners []uint64 `json:"learners,omitempty"`
	// Generation counts the range's splits.
	Generation uint64 `json:"generation"`
}

type tablesJSON struct {
	Tables []tableJSON `json:"tables"` // never null
}

// createTableJSON is the body of POST /v1/tables. The contract's other
// settings are decoded only to be refused with a clear message.
type createTableJSON struct {
	Name          string          `json:"name"`
	Partitioning  string          `json:"partitioning"`
	InitialRanges uint32          `json:"initial_ranges"`
	Replicas      json.RawMessage `json:"replicas"`
	Learners      json.RawMessage `json:"learners"`
	RangeMaxBytes json.RawMessage `json:"range_max_bytes"`
	Consistency   string          `json:"consistency"`
	// Quotas: the table's size in bytes, and writes per second.
	MaxBytes        uint64 `json:"max_bytes"`
	MaxWritesPerSec uint32 `json:"max_writes_per_sec"`
	MaxReadsPerSec  uint32 `json:"max_reads_per_sec"`
	// Key history retention (see tableJSON).
	HistoryKeep *uint32 `json:"history_keep"`
	HistoryFor  *string `json:"history_for"`
}

func toTableJSON(t *cairnpb.Table) tableJSON {
	out := tableJSON{
		Name:         t.GetName(),
		ID:           t.GetId(),
		Partitioning: t.GetPartitioning(),
		Replicas:     t.GetReplicas(),
		Learners:     t.GetLearners(),
		HistoryKeep:  t.HistoryVersions,
		Ranges:       make([]rangeJSON, 0, len(t.GetRanges())),
		Consistency:  t.GetConsistency(),
		MaxBytes:     t.GetMaxBytes(), MaxWritesPerSec: t.GetMaxWritesPerSec(), MaxReadsPerSec: t.GetMaxReadsPerSec(),
	}
	if out.Consistency == "" {
		out.Consistency = kv.Linearizable
	}
	if t.HistoryRetentionMs != nil {
		out.HistoryFor = (time.Duration(*t.HistoryRetentionMs) * time.Millisecond).String()
	}
	for _, rd := range t.GetRanges() {
		out.Ranges = append(out.Ranges, rangeJSON{
			ID:       rd.GetId(),
			Start:    bound(t.GetPartitioning(), rd.GetStart()),
			End:      bound(t.GetPartitioning(), rd.GetEnd()),
			Replicas: nonNil(rd.GetReplicas()), Learners: rd.GetLearners(), Generation: rd.GetGeneration(),
		})
	}
	return out
}

func nonNil(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

// tables serves /v1/tables: GET lists, POST creates.
func (h *handler) tables(w *statusWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		h.createTable(w, r)
		return
	}
	resp, err := h.svc.ListTables(r.Context(), &cairnpb.ListTablesRequest{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := tablesJSON{Tables: make([]tableJSON, 0, len(resp.GetTables()))}
	for _, t := range resp.GetTables() {
		out.Tables = append(out.Tables, toTableJSON(t))
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (h *handler) createTable(w *statusWriter, r *http.Request) {
	req, err := decodeCreateTable(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := h.svc.CreateTable(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/tables/"+t.GetName())
	writeJSON(w, r, http.StatusCreated, toTableJSON(t))
}

// decodeCreateTable reads and checks the body of POST /v1/tables.
func decodeCreateTable(w http.ResponseWriter, r *http.Request) (*cairnpb.CreateTableRequest, error) {
	body, err := readBody(w, r, maxTableBodyBytes)
	if err != nil {
		return nil, err
	}
	var in createTableJSON
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"range_max_bytes", in.RangeMaxBytes},
	} {
		if f.raw != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "%s is not supported yet", f.name)
		}
	}
	switch in.Partitioning {
	case "", "range", "hash":
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "partitioning must be range or hash; got %q", in.Partitioning)
	}
	if err := kv.ValidateTableName(in.Name); err != nil {
		return nil, err
	}
	if _, err := kv.ParseConsistency(in.Consistency); err != nil {
		return nil, err
	}
	var replicas uint32
	if in.Replicas != nil {
		var n int64
		if err := json.Unmarshal(in.Replicas, &n); err != nil || n < 1 || n > kv.MaxReplicas {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "replicas must be a number from 1 to %d; got %s", kv.MaxReplicas, in.Replicas)
		}
		replicas = uint32(n)
	}
	var learners uint32
	if in.Learners != nil {
		var n int64
		if err := json.Unmarshal(in.Learners, &n); err != nil || n < 0 || n > kv.MaxLearners {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "learners must be a number from 0 to %d; got %s", kv.MaxLearners, in.Learners)
		}
		learners = uint32(n)
	}
	req := &cairnpb.CreateTableRequest{Name: in.Name, Partitioning: in.Partitioning, InitialRanges: in.InitialRanges,
		Consistency: in.Consistency, MaxBytes: in.MaxBytes, MaxWritesPerSec: in.MaxWritesPerSec, Replicas: replicas, Learners: learners,
		HistoryVersions: in.HistoryKeep, MaxReadsPerSec: in.MaxReadsPerSec}
	if req.HistoryRetentionMs, err = historyFor(in.HistoryFor); err != nil {
		return nil, err
	}
	if err := kv.ValidateHistory(req.HistoryVersions, req.HistoryRetentionMs); err != nil {
		return nil, err
	}
	return req, nil
}

// updateTableJSON is the body of PATCH /v1/tables/{name}: the settings to
// change (absent: kept). Partitioning and the name cannot change.
type updateTableJSON struct {
	Consistency     *string `json:"consistency"`
	MaxBytes        *uint64 `json:"max_bytes"`
	MaxWritesPerSec *uint32 `json:"max_writes_per_sec"`
	MaxReadsPerSec  *uint32 `json:"max_reads_per_sec"`
	Replicas        *uint32 `json:"replicas"`
	Learners        *uint32 `json:"learners"`
	HistoryKeep     *uint32 `json:"history_keep"`
	HistoryFor      *string `json:"history_for"`
}

// historyFor parses a history retention duration ("24h"; nil: not set).
func historyFor(s *string) (*uint64, error) {
	if s == nil {
		return nil, nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil || d < 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "history_for must be a duration such as 24h; got %q", *s)
	}
	ms := uint64(d / time.Millisecond)
	return &ms, nil
}

// decodeUpdateTable reads and checks the body of PATCH /v1/tables/{name}.
func decodeUpdateTable(w http.ResponseWriter, r *http.Request, name string) (*cairnpb.UpdateTableRequest, error) {
	body, err := readBody(w, r, maxTableBodyBytes)
	if err != nil {
		return nil, err
	}
	var in updateTableJSON
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	if in == (updateTableJSON{}) {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "nothing to change: set consistency, max_bytes, max_writes_per_sec, max_reads_per_sec, replicas, learners, history_keep or history_for")
	}
	req := &cairnpb.UpdateTableRequest{Name: name, Consistency: in.Consistency, MaxBytes: in.MaxBytes,
		MaxWritesPerSec: in.MaxWritesPerSec, MaxReadsPerSec: in.MaxReadsPerSec, Replicas: in.Replicas, Learners: in.Learners, HistoryVersions: in.HistoryKeep}
	if req.HistoryRetentionMs, err = historyFor(in.HistoryFor); err != nil {
		return nil, err
	}
	if err := kv.ValidateHistory(req.HistoryVersions, req.HistoryRetentionMs); err != nil {
		return nil, err
	}
	if err := kv.ValidateTableName(name); err != nil {
		return nil, err
	}
	if req.Consistency != nil {
		if _, err := kv.ParseConsistency(*req.Consistency); err != nil {
			return nil, err
		}
	}
	if req.Replicas != nil && (*req.Replicas < 1 || *req.Replicas > kv.MaxReplicas) {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "replicas must be a number from 1 to %d; got %d", kv.MaxReplicas, *req.Replicas)
	}
	if req.Learners != nil && *req.Learners > kv.MaxLearners {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "learners must be a number from 0 to %d; got %d", kv.MaxLearners, *req.Learners)
	}
	return req, nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return kv.Errorf(kv.ErrInvalidArgument, "body is empty; want a JSON object")
		}
		return kv.Errorf(kv.ErrInvalidArgument, "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return kv.Errorf(kv.ErrInvalidArgument, "malformed JSON body: data after the object")
	}
	return nil
}

// table serves /v1/tables/{name}.
func (h *handler) table(w *statusWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodDelete:
		if _, err := h.svc.DropTable(r.Context(), &cairnpb.DropTableRequest{Name: name}); err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, struct{}{})
		return
	}
	if r.Method == http.MethodPatch {
		req, err := decodeUpdateTable(w, r, name)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		t, err := h.svc.UpdateTable(r.Context(), req)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toTableJSON(t))
		return
	}
	t, err := h.svc.GetTable(r.Context(), &cairnpb.GetTableRequest{Name: name})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, toTableJSON(t))
}

type clusterJSON struct {
	Nodes  []nodeJSON        `json:"nodes"`  // never null
	Ranges []rangeStatusJSON `json:"ranges"` // never null
	// Coordinator is the node whose scheduler reported the decisions (0:
	// it did not answer in time).
	Coordinator uint64         `json:"coordinator"`
	Decisions   []decisionJSON `json:"decisions"` // never null
}

type nodeJSON struct {
	ID      uint64 `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	// ClientAddress is the node's client API address (--advertise) as it
	// last reported it; Address is its peer address.
	ClientAddress string `json:"client_address,omitempty"`
	Alive         bool   `json:"alive"`
	Ranges        uint32 `json:"ranges"`
	Leaders       uint32 `json:"leaders"`
	// State is active, draining, removing or removed.
	State string `json:"state"`
	// LastHeartbeatMs is how long ago the coordinator heard from the node
	// (-1: not since it became coordinator, or unknown).
	LastHeartbeatMs int64   `json:"last_heartbeat_ms"`
	Bytes           uint64  `json:"bytes"`
	ReadsPerSec     float64 `json:"reads_per_sec"`
	WritesPerSec    float64 `json:"writes_per_sec"`
}

type rangeStatusJSON struct {
	ID           uint64   `json:"id"`
	Table        string   `json:"table"`
	Start        string   `json:"start"`
	End          string   `json:"end"`
	Replicas     []uint64 `json:"replicas"`
	Learners     []uint64 `json:"learners"`
	Leader       uint64   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	SizeBytes    uint64   `json:"size_bytes"`
	Generation   uint64   `json:"generation"`
	ConfVersion  uint64   `json:"conf_version"`
	// Removed are nodes that left the range and never get it back.
	Removed []uint64 `json:"removed,omitempty"`
	// Lag: per other replica's node ID, the log entries it is behind the
	// leader's commit index (as the leader last reported).
	Lag map[string]uint64 `json:"lag,omitempty"`
}

type decisionJSON struct {
	AtUnixMs int64  `json:"at_unix_ms"`
	Op       string `json:"op"`
	Range    uint64 `json:"range,omitempty"`
	Node     uint64 `json:"node"`
	Reason   string `json:"reason"`
	Outcome  string `json:"outcome"`
}

// splitJSON is the body of POST /v1/ranges/split and /v1/ranges/merge.
type splitJSON struct {
	Table string `json:"table"`
	Key   string `json:"key"`
}

type splitReplyJSON struct {
	Left  rangeJSON `json:"left"`
	Right rangeJSON `json:"right"`
}

func toRangeJSON(partitioning string, rd *cairnpb.RangeDescriptor) rangeJSON {
	return rangeJSON{ID: rd.GetId(), Start: bound(partitioning, rd.GetStart()), End: bound(partitioning, rd.GetEnd()),
		Replicas: nonNil(rd.GetReplicas()), Generation: rd.GetGeneration()}
}

// splitRange serves POST /v1/ranges/split {"table","key"}: split the range
// of table holding key at key.
func (h *handler) splitRange(w *statusWriter, r *http.Request) {
	sp, ok := h.svc.(kv.Splitter)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "this server cannot split ranges"))
		return
	}
	req, ok := h.readRangeOp(w, r)
	if !ok {
		return
	}
	resp, err := sp.SplitRange(r.Context(), &cairnpb.SplitRangeRequest{Table: req.Table, Key: []byte(req.Key)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := h.partitioning(r, req.Table)
	writeJSON(w, r, http.StatusOK, splitReplyJSON{Left: toRangeJSON(p, resp.GetLeft()), Right: toRangeJSON(p, resp.GetRight())})
}

// mergeRange serves POST /v1/ranges/merge {"table","key"}: merge the range
// of table holding key with the range to its right.
func (h *handler) mergeRange(w *statusWriter, r *http.Request) {
	m, ok := h.svc.(kv.Merger)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "this server cannot merge ranges"))
		return
	}
	req, ok := h.readRangeOp(w, r)
	if !ok {
		return
	}
	resp, err := m.MergeRange(r.Context(), &cairnpb.MergeRangeRequest{Table: req.Table, Key: []byte(req.Key)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]rangeJSON{"merged": toRangeJSON(h.partitioning(r, req.Table), resp.GetMerged())})
}

// readRangeOp reads the body of a split or merge, {"table","key"}; on
// failure it has answered the request.
func (h *handler) readRangeOp(w *statusWriter, r *http.Request) (splitJSON, bool) {
	var req splitJSON
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		h.fail(w, r, err)
		return req, false
	}
	if err := json.Unmarshal(body, &req); err != nil {
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "body is not JSON {\"table\",\"key\"}: %v", err))
		return req, false
	}
	return req, true
}

// partitioning returns a table's partitioning ("" if unknown), so that
// the bounds of a hash table's ranges show as hash positions (splits and
// merges are rare admin operations: the extra table lookup is cheap).
func (h *handler) partitioning(r *http.Request, table string) string {
	t, err := h.svc.GetTable(r.Context(), &cairnpb.GetTableRequest{Name: table})
	if err != nil {
		return ""
	}
	return t.GetPartitioning()
}

func (h *handler) cluster(w *statusWriter, r *http.Request) {
	st, err := h.svc.ClusterStatus(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := clusterJSON{
		Nodes:       make([]nodeJSON, 0, len(st.GetNodes())),
		Ranges:      make([]rangeStatusJSON, 0, len(st.GetRanges())),
		Coordinator: st.GetCoordinator(),
		Decisions:   make([]decisionJSON, 0, len(st.GetDecisions())),
	}
	for _, n := range st.GetNodes() {
		out.Nodes = append(out.Nodes, nodeJSON{
			ID: n.GetId(), Name: n.GetName(), Address: n.GetAddress(), ClientAddress: n.GetClientAddress(),
			Alive: n.GetAlive(), Ranges: n.GetRanges(), Leaders: n.GetLeaders(),
			State: n.GetState(), LastHeartbeatMs: n.GetLastHeartbeatMs(), Bytes: n.GetBytes(),
			ReadsPerSec: n.GetReadsPerSec(), WritesPerSec: n.GetWritesPerSec(),
		})
	}
	for _, rs := range st.GetRanges() {
		out.Ranges = append(out.Ranges, rangeStatusJSON{
			ID: rs.GetId(), Table: rs.GetTable(),
			Start: bound(rs.GetPartitioning(), rs.GetStart()), End: bound(rs.GetPartitioning(), rs.GetEnd()),
			Replicas: nonNil(rs.GetReplicas()), Learners: nonNil(rs.GetLearners()), Leader: rs.GetLeader(), Term: rs.GetTerm(),
			CommitIndex: rs.GetCommitIndex(), AppliedIndex: rs.GetAppliedIndex(),
			SizeBytes: rs.GetSizeBytes(), Generation: rs.GetGeneration(), ConfVersion: rs.GetConfVersion(), Removed: rs.GetRemoved(),
			Lag: lagJSON(rs.GetLag()),
		})
	}
	for _, d := range st.GetDecisions() {
		out.Decisions = append(out.Decisions, decisionJSON{AtUnixMs: d.GetAtUnixMs(), Op: d.GetOp(), Range: d.GetRangeId(),
			Node: d.GetNode(), Reason: d.GetReason(), Outcome: d.GetOutcome()})
	}
	writeJSON(w, r, http.StatusOK, out)
}

// nodeActionJSON is the body of POST /v1/cluster/nodes.
type nodeActionJSON struct {
	ID     uint64 `json:"id"`
	Action string `json:"action"`
}

// nodeAction serves POST /v1/cluster/nodes {"id":N,"action":"drain"|
// "remove"|"activate"}.
func (h *handler) nodeAction(w *statusWriter, r *http.Request) {
	op, ok := h.svc.(kv.NodeOperator)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "this server cannot manage nodes"))
		return
	}
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req nodeActionJSON
	if err := decodeStrict(body, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.ID == 0 {
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "id (a node ID) is required"))
		return
	}
	resp, err := op.NodeAction(r.Context(), &cairnpb.NodeActionRequest{Node: req.ID, Action: req.Action})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n := resp.GetNode()
	writeJSON(w, r, http.StatusOK, nodeJSON{ID: n.GetId(), Name: n.GetName(), Address: n.GetAddress(), State: n.GetState(), LastHeartbeatMs: -1})
}

// readyz is 200 "ready" when svc.Ready is nil, else 503 with the error.
func (h *handler) readyz(w *statusWriter, r *http.Request) {
	err := h.svc.Ready(r.Context())
	if err == nil {
		writeText(w, r, http.StatusOK, "ready")
		return
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		w.status = statusClientClosed
		return
	}
	_, code := statusOf(err)
	msg := err.Error()
	if code == "internal" {
		msg = "internal error"
	}
	h.log.Debug("httpapi: not ready", "err", err)
	writeJSON(w, r, http.StatusServiceUnavailable, errorJSON{Error: errorBody{Code: code, Message: msg}})
}

// bound renders a range boundary: the key itself, or on a hash table its
// hash position in hex ("0x" and 16 digits, the format a manual split of
// a hash table takes).
func bound(partitioning string, k []byte) string {
	if partitioning == "hash" {
		return hashkey.FormatBound(k)
	}
	return string(k)
}

func lagJSON(lag []*cairnpb.ReplicaLag) map[string]uint64 {
	if len(lag) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(lag))
	for _, l := range lag {
		out[strconv.FormatUint(l.GetNode(), 10)] = l.GetEntries()
	}
	return out
}
