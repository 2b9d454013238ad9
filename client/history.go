package client

import (
	"context"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// History returns key's retained changes in table, newest first (at most
// limit; 0: the server's default), and whether they reach back to the
// key's first change. How much is retained is the cluster's
// --history-versions and --history-retention.
func (c *Client) History(ctx context.Context, table string, key []byte, limit int) (changes []WatchEvent, complete bool, err error) {
	req := &cairnpb.HistoryRequest{Table: table, Key: key, Limit: uint32(limit)}
	var resp *cairnpb.HistoryResponse
	err = c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.history.History(ctx, req)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return toWatchResponse(&cairnpb.WatchResponse{Events: resp.Changes}).Events, resp.Complete, nil
}

// GetAt returns the value key had at version (the change in effect then):
// ErrNotFound if it did not exist then, ErrCompacted if that change is no
// longer retained.
func (c *Client) GetAt(ctx context.Context, table string, key []byte, version uint64) (value []byte, changedAt uint64, err error) {
	req := &cairnpb.HistoryRequest{Table: table, Key: key, AtVersion: version}
	var resp *cairnpb.HistoryResponse
	err = c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.history.History(ctx, req)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Changes) != 1 {
		return nil, 0, newError("internal", "history at a version returned no change", "")
	}
	return resp.Changes[0].Value, resp.Changes[0].Version, nil
}
